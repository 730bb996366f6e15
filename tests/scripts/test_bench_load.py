"""devkit/load.py and scripts/bench_load.py: clients and rounds against the real TCP server, in-memory backend."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import proxy_fakes as fakes
import pytest
from proxy_thread import ServerThread

from devkit import load as bench
from devkit.client import DevClient
from devkit.ports import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_load.py"
USERS = ["loadvip", "loaduser"]
PASSWORD = "pw"


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setitem(fakes.USERS, USERS[0], (PASSWORD, True))
    monkeypatch.setitem(fakes.USERS, USERS[1], (PASSWORD, False))
    s = ServerThread(str(tmp_path))
    yield s
    s.stop()


def _workload(port: int, mix: str, requests: int):
    photos = [b"\xff\xd8photo-a\xff\xd9", b"\xff\xd8photo-b\xff\xd9"]
    video = b"\x00\x00\x00\x18ftypmp42" + bytes(100)
    return bench.Workload("127.0.0.1", port, photos, video, bench.parse_mix(mix), PASSWORD, 10.0, requests)


def test_round_counts_outcomes_and_keeps_each_client_on_its_own_address(server):
    work = _workload(server.port, "image=2,get_glb=1,login=1", requests=5)
    result = bench.run_round(work, USERS, memory_root=os.getpid())
    row = bench.summarize(result)

    assert row["clients"] == "2"
    assert row["requests"] == str(2 * (1 + 5))  # the first LOGIN of each client, then 5 requests
    assert (row["OK"], row["ERROR_BUSY"], row["other errors"], row["dropped"]) == ("12", "0", "0", "0")
    assert row["IMAGE ms p50/95/99"] != "-" and row["VIDEO ms p50/95/99"] == "-"
    assert row["ingress MiB"] == row["replicas MiB"] == "-"  # no Serve replica runs below this process
    assert bench.table_row(row).count("|") == len(bench.COLUMNS) + 1

    sources = {log.username: log.source for log in result.logs}
    assert len(set(sources.values())) == 2
    assert {(user, address) for user, address in server.backend.logins} == set(sources.items())
    # IMAGE and GET_GLB came on connections without a LOGIN: each from its client's own address
    for record in server.records:
        if record.command == "IMAGE":
            assert sources[record.user] == record.peer
    assert {r.peer for r in server.records} == set(sources.values())


def test_video_needs_vip_and_every_upload_is_new(server):
    work = _workload(server.port, "video=1", requests=3)
    result = bench.run_round(work, USERS)
    by_user = {log.username: [o.result for o in log.outcomes[1:]] for log in result.logs}

    assert by_user == {"loadvip": ["OK"] * 3, "loaduser": ["ERROR_VIP_REQUIRED"] * 3}
    assert sum(log.video_hits for log in result.logs) == 0  # a trailing box makes each upload differ
    assert len(server.backend.stored) == 3
    assert bench.summarize(result)["other errors"] == "3"
    assert any("ERROR_VIP_REQUIRED x3" in line for line in bench.notes(result))


def test_a_closed_port_counts_as_dropped():
    work = _workload(free_port(), "login=1", requests=1)
    result = bench.run_round(work, USERS[:1])
    assert bench.summarize(result)["dropped"] == "2"
    assert any("DROPPED LOGIN" in line for line in bench.notes(result))


def test_a_generated_video_streams_as_one_upload_from_the_chosen_address(server):
    chunk = bytes(range(256)) * 4
    for user, source in zip(USERS, ("127.0.0.7", "127.0.0.8")):
        with DevClient("127.0.0.1", server.port, timeout=10.0, source=source, nodelay=True) as client:
            assert client.login(user, PASSWORD)[0] is True
            replies = client.video_stream(2500, chunk)
        if user == "loadvip":
            assert replies[0].endswith(".glb") and replies[1] == b"glTF" + chunk[:64]
        else:
            assert replies == ("", b"ERROR_VIP_REQUIRED")
    assert {r.peer for r in server.records} == {"127.0.0.7", "127.0.0.8"}


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("mix", ["image", "image=x", "photos=1", "image=0,video=0", "image=-1"])
def test_a_bad_mix_is_refused(mix):
    with pytest.raises(argparse.ArgumentTypeError):
        bench.parse_mix(mix)


def test_bad_options_are_a_usage_error():
    for option, value in (("--mix", "image=x"), ("--clients", "1,0")):
        done = run_script(option, value, "--requests", "1")
        assert done.returncode == 2
        assert option in done.stderr
