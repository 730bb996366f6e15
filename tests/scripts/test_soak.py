"""devkit/soak.py and scripts/soak.py: clients against the real TCP server (in-memory backend), the growth verdict."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import proxy_fakes as fakes
import pytest
from proxy_thread import ServerThread

from devkit import soak
from tcp_proxy.codec import GET_GLB, IMAGE

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"
USER, PASSWORD = "soakvip", "pw"
PHOTOS = [
    b"\xff\xd8photo-a\xff\xd9",
    b"\xff\xd8photo-b\xff\xd9",
    b"\xff\xd8photo-c\xff\xd9",
]


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setitem(fakes.USERS, USER, (PASSWORD, True))
    s = ServerThread(str(tmp_path))
    yield s
    s.stop()


class StopAfter(soak.Outcomes):
    """Outcome counts that stop the clients once `limit` outcomes were counted."""

    def __init__(self, limit: int, stop: threading.Event):
        super().__init__()
        self.limit, self.stop = limit, stop

    def add(self, outcome) -> None:
        super().add(outcome)
        if sum(self.snapshot().values()) >= self.limit:
            self.stop.set()


def test_a_client_logs_in_once_then_sends_images_and_every_third_request_fetches_its_latest_glb(
    server,
):
    plan = soak.SoakPlan("127.0.0.1", server.port, 1, [USER], PASSWORD, PHOTOS, glb_every=3, timeout=10.0)
    stop = threading.Event()
    outcomes = StopAfter(1 + 9, stop)
    soak.soak_client(plan, 0, stop, outcomes)

    assert outcomes.snapshot() == Counter({("LOGIN", "OK"): 1, ("IMAGE", "OK"): 6, ("GET_GLB", "OK"): 3})
    commands = [r.command for r in server.records]  # the last one may be recorded just after its reply
    assert len(commands) >= 9 and commands == (["LOGIN"] + ["IMAGE", "IMAGE", "GET_GLB"] * 3)[: len(commands)]
    assert len(server.backend.stored) == 6  # every upload differs: the result cache never answers


def test_a_run_samples_at_its_start_and_end_and_counts_every_client(server):
    plan = soak.SoakPlan("127.0.0.1", server.port, 3, [USER], PASSWORD, PHOTOS, timeout=10.0)
    samples = soak.soak(plan, seconds=1.0, sample_s=0.5, root=os.getpid(), read_s=0.2)

    assert samples[0].seconds == 0 and samples[-1].seconds >= 1.0 and len(samples) >= 3
    assert samples[-1].memory == {}  # no Serve replica runs below this process
    counts = samples[-1].outcomes
    assert counts[("LOGIN", "OK")] == 3
    assert counts[("IMAGE", "OK")] >= 3 and not [k for k in counts if k[1] != "OK"]
    row = soak.table_row(samples[-1], [])
    assert row.count("|") == len(["minute", "object store", "OK", "ERROR_BUSY", "other", "dropped"]) + 1


@pytest.mark.parametrize(
    ("done", "latest", "command"),
    [
        (8, "abc", IMAGE),
        (9, "abc", GET_GLB),
        (10, "abc", IMAGE),
        (19, "abc", GET_GLB),
        (9, "", IMAGE),
    ],
)
def test_every_tenth_request_is_a_get_glb_once_there_is_a_result(done, latest, command):
    assert soak.next_command(done, 10, latest) == command


def test_no_get_glb_when_asked_for_none():
    assert {soak.next_command(done, 0, "abc") for done in range(30)} == {IMAGE}


def test_the_deployment_is_read_from_the_replica_command_line():
    assert soak.deployment_of("ray::ServeReplica:vggt:GlbExporter") == "GlbExporter"
    assert soak.deployment_of("ray::ServeReplica:vggt:TCPIngress extra") == "TCPIngress"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([500, 100, 100, 100, 100, 100, 100, 100], 0.0),  # the first half does not count
        ([100, 100, 100, 100, 100, 100, 110, 110], 0.10),
        ([100] * 6 + [100, 200, 100, 100, 100, 100], 0.0),  # one high sample does not move a median
        ([100, 100, 100, 100, 100, 100, 90, 90], -0.10),
    ],
)
def test_growth_compares_the_two_quarters_of_the_last_half(values, expected):
    assert soak.growth(values) == pytest.approx(expected)


def test_growth_needs_two_samples_in_the_last_half():
    assert soak.growth([100]) is None and soak.growth([100, 100]) is None
    assert soak.growth([100, 100, 100]) == 0


def _samples(rss_by_minute: list[int]) -> list[soak.Sample]:
    return [soak.Sample(60.0 * i, {"GlbExporter": (rss, rss, 0)}, Counter()) for i, rss in enumerate(rss_by_minute)]


@pytest.mark.parametrize(("last", "flat"), [(104, True), (105, True), (106, False)])
def test_the_verdict_fails_growth_over_the_limit(last, flat):
    lines, ok = soak.verdict(_samples([100, 100, 100, 100, last, last]), 0.05)
    assert ok is flat
    assert lines[0].startswith(f"GlbExporter: +{last - 100:.1f} %")
    assert soak.report(_samples([100, 100, 100, 100, last, last]), 0.05) == (0 if flat else 1)


def test_too_few_samples_fail():
    assert soak.verdict(_samples([100, 100]), 0.05) == (
        ["GlbExporter: too few samples to judge"],
        False,
    )


def test_bad_options_are_a_usage_error():
    for option in ("--clients", "--minutes"):
        done = subprocess.run(
            [sys.executable, str(SCRIPT), option, "0"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and option in done.stderr


def test_a_row_holds_the_lowest_reading_of_its_interval():
    quiet, busy = (200, 150, 50), (320, 200, 120)
    readings = [({"GlbExporter": busy}, 10), ({"GlbExporter": quiet}, 30), ({"GlbExporter": busy}, 20)]
    sample = soak.take_sample(60.0, readings, soak.Outcomes())
    assert sample.memory == {"GlbExporter": quiet} and sample.store == 30
