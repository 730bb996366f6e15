"""devkit/abuse.py and scripts/abuse_check.py: the scenarios against the real TCP server, in-memory backend (no Ray)."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import proxy_fakes as fakes
import pytest

from devkit import abuse
from devkit.memory import PeakSampler
from tcp_proxy.server import start_server
from tcp_proxy.sessions import MemorySessionStore
from tcp_proxy.settings import ProxySettings

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "abuse_check.py"

PASSWORD = "pw"
LEGIT = "abuse-legit"
STALLERS = ["stall-a", "stall-b", "stall-c"]


class RevocableSessions(MemorySessionStore):
    """Address bindings in memory; accounts named in `disabled` are refused from then on."""

    def __init__(self):
        super().__init__(3600.0)
        self.disabled: set[str] = set()

    async def current(self, user):
        return None if user.username in self.disabled else user

    async def user_at(self, address):
        user = await super().user_at(address)
        return None if user is None else await self.current(user)


class SlowLogins(fakes.FakeBackend):
    """Every LOGIN takes longer than the goal allows."""

    async def login(self, username, password, address):
        await asyncio.sleep(1.2)  # the slowness under test: over LOGIN_GOAL_S (1 s)
        return await super().login(username, password, address)


@contextmanager
def serving(backend, sessions=None, **settings):
    """The proxy over `backend` on its own event loop in a thread; yields (target, loop)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = ProxySettings(host="127.0.0.1", port=0, **settings)
    start = start_server(proxy, backend, max_images=5, port=0, sessions=sessions)
    server = asyncio.run_coroutine_threadsafe(start, loop).result(10)
    try:
        yield abuse.Target("127.0.0.1", server.port)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.fixture(autouse=True)
def users(monkeypatch):
    for name in [LEGIT, *STALLERS]:
        monkeypatch.setitem(fakes.USERS, name, (PASSWORD, False))


SLOW_RUN_S = 3.0
SMALL_FRAME_TIMEOUT_S = 1.0
REVOCATION_LIMIT_S = 5.0


def _slow_check(target, seconds=SLOW_RUN_S, baseline_logins=3):
    return asyncio.run(
        abuse.check_slow_connections(
            target, LEGIT, PASSWORD, connections=12, addresses=2, seconds=seconds, dribble_s=0.3, login_every_s=0.5,
            baseline_logins=baseline_logins,
        )
    )


def test_slow_connections_are_cut_off_and_legit_logins_pass(tmp_path):
    with serving(fakes.FakeBackend(), spool_dir=str(tmp_path), small_frame_timeout_s=SMALL_FRAME_TIMEOUT_S) as target:
        finding = _slow_check(target)

    assert finding.met, finding
    assert finding.figures["logins"] >= 3
    assert finding.figures["answered"] == finding.figures["in_time"] == finding.figures["logins"]
    opened, held = finding.figures["opened"], finding.figures["held_s"]
    assert opened > 12  # cut off, then reconnected
    # every connection the run's end did not close (one per slow client at most) was cut off by the server,
    # each no sooner than the small-frame timeout and before the run ended (never held to the end)
    assert len(held) >= opened - 12
    assert all(SMALL_FRAME_TIMEOUT_S <= seconds < SLOW_RUN_S for seconds in held), held
    assert finding.figures["baseline_ms"] > 0 and "before the attack" in finding.measured
    assert finding.scenario.startswith("1 ") and "p50" in finding.measured


def test_slow_logins_fail_the_goal(tmp_path):
    with serving(SlowLogins(), spool_dir=str(tmp_path)) as target:
        finding = _slow_check(target, seconds=2.0, baseline_logins=1)

    assert not finding.met
    assert finding.figures["answered"] >= 1 and finding.figures["in_time"] == 0
    assert "NO |" in abuse.table([finding])


def test_revocation_is_measured_from_the_disabling(tmp_path):
    sessions = RevocableSessions()
    with serving(fakes.FakeBackend(), sessions, spool_dir=str(tmp_path)) as target:
        finding = asyncio.run(
            abuse.check_revocation(
                target, LEGIT, PASSWORD, lambda: sessions.disabled.add(LEGIT), limit_s=REVOCATION_LIMIT_S
            )
        )

    assert finding.met, finding
    # the first upload probed after the disabling is refused (no clock needed: none was admitted), and the
    # time is measured from the disabling, inside the check's limit
    assert "0 uploads admitted before" in finding.measured
    assert 0 <= finding.figures["seconds"] < REVOCATION_LIMIT_S


def test_revocation_not_applied_fails_the_goal(tmp_path):
    with serving(fakes.FakeBackend(), RevocableSessions(), spool_dir=str(tmp_path)) as target:
        finding = asyncio.run(abuse.check_revocation(target, LEGIT, PASSWORD, lambda: None, limit_s=1.0))

    assert not finding.met and finding.figures["seconds"] is None
    assert "not refused" in finding.measured


def test_stalled_uploads_are_held_and_memory_growth_is_judged(tmp_path):
    growing = itertools.count(0, 16 * abuse.MiB)  # a fake ingress that leaks 16 MiB per sample
    with serving(fakes.FakeBackend(), spool_dir=str(tmp_path)) as target:
        finding = asyncio.run(
            abuse.check_stalled_uploads(target, STALLERS, PASSWORD, lambda: next(growing), hold_s=1.0)
        )

    assert finding.figures["held"] == 3 and not finding.figures["failed"]
    assert finding.figures["rss_growth"] >= 64 * abuse.MiB and not finding.met


def test_slow_readers_keep_small_downloads_working(tmp_path):
    backend = fakes.FakeBackend()
    big, small = "b" * 64, "5" * 64
    backend.stored[big] = abuse.glb_bytes(8 * abuse.MiB)
    backend.stored[small] = abuse.glb_bytes(4096)
    with serving(backend, spool_dir=str(tmp_path)) as target:
        finding = asyncio.run(
            abuse.check_slow_readers(target, big, small, abuse.glb_bytes(4096), lambda: 100, readers=3, hold_s=1.0)
        )

    assert finding.met, finding
    assert finding.figures["small_ok"] and finding.figures["rss_growth"] == 0


def test_no_ingress_process_does_not_meet_a_memory_goal():
    with PeakSampler(lambda: None, every_s=0.01) as sampler:
        pass
    finding = abuse.memory_finding("2 stalled uploads", sampler, "detail")
    assert not finding.met and "not found" in finding.measured


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("host", ["192.0.2.1", "10.0.0.1"])
def test_a_host_off_loopback_is_refused(host):
    done = run_script("--host", host, "--scenarios", "1")
    assert done.returncode == 2
    assert "--host" in done.stderr and "loopback address" in done.stderr


def test_a_bad_scenario_list_is_a_usage_error():
    done = run_script("--scenarios", "1,9")
    assert done.returncode == 2
    assert "--scenarios" in done.stderr
