"""The readiness checks without Ray: bounded in time, a hung check shared rather than repeated, real SQLite and folders."""

from __future__ import annotations

import asyncio
import os
import stat
import threading

import pytest

from serve_app.config import AppSettings
from serve_app.http.health import (
    CheckFailed,
    ServiceReadiness,
    ThreadProbe,
    database_check,
    listener_probe,
    model_probe,
    readiness,
    run_check,
    storage_check,
)
from serve_app.storage.blob_root import LocalRoot

SECRET = "S3cret-pw"


def run(coro):
    return asyncio.run(coro)


async def passes() -> str:
    return "fine"


async def fails() -> str:
    raise CheckFailed("the thing is down")


async def hangs() -> str:
    await asyncio.Event().wait()
    return "never"


async def hangs_mapping() -> dict:
    await asyncio.Event().wait()
    return {}


def test_all_passing_checks_are_ready_with_each_detail():
    ready, body = run(readiness({"a": passes, "b": passes}, timeout_s=1.0))
    assert ready is True
    assert body["ready"] is True and "failing" not in body
    assert {name: check["ok"] for name, check in body["checks"].items()} == {"a": True, "b": True}
    assert body["checks"]["a"]["detail"] == "fine"


def test_one_failing_check_makes_it_not_ready_and_is_named():
    ready, body = run(readiness({"a": passes, "b": fails}, timeout_s=1.0))
    assert ready is False
    assert body["failing"] == ["b"]
    assert body["checks"]["b"] == {"ok": False, "detail": "the thing is down", "seconds": body["checks"]["b"]["seconds"]}
    assert body["checks"]["a"]["ok"] is True


def test_a_hung_check_fails_after_its_timeout_and_the_others_still_answer():
    ready, body = run(readiness({"hung": hangs, "ok": passes}, timeout_s=0.2))
    assert ready is False and body["failing"] == ["hung"]
    assert body["checks"]["hung"]["detail"] == "no answer within 0.2 s"
    assert body["checks"]["ok"]["ok"] is True


def test_an_unexpected_error_is_a_failed_check_in_one_line():
    async def broken() -> str:
        raise RuntimeError("first line\nsecond line")

    result = run(run_check(broken, 1.0))
    assert not result.ok and result.detail == "RuntimeError: first line"


def test_a_blocking_check_still_running_is_awaited_again_not_started_twice():
    release = threading.Event()
    calls = []

    def blocking() -> str:
        calls.append(1)
        release.wait(30)
        return "answered"

    probe = ThreadProbe(blocking)

    async def scenario():
        first = await run_check(probe, 0.1)
        second = await run_check(probe, 0.1)
        release.set()
        third = await run_check(probe, 5.0)
        return first, second, third

    first, second, third = run(scenario())
    assert not first.ok and not second.ok and "no answer within 0.1 s" in second.detail
    assert third.ok and third.detail == "answered"
    assert len(calls) == 1  # the second and third probes waited on the first run


def test_a_stuck_blocking_check_is_left_behind_so_a_recovered_component_is_seen():
    stuck = threading.Event()
    recovered = threading.Event()

    def blocking() -> str:
        if not recovered.is_set():
            stuck.wait(30)
            return "late"
        return "answered"

    probe = ThreadProbe(blocking, abandon_after_s=0.0)

    async def scenario():
        first = await run_check(probe, 0.1)
        recovered.set()
        second = await run_check(probe, 5.0)
        return first, second, probe.abandoned

    first, second, abandoned = run(scenario())
    stuck.set()
    assert not first.ok and second.ok and second.detail == "answered"
    assert abandoned == 1


def service_settings(tmp_path, **health) -> AppSettings:
    storage = {"database_url": f"sqlite:///{tmp_path / 'app.db'}", "storage_root": str(tmp_path / "store")}
    return AppSettings.from_dict({"storage": storage, "health": health})


def test_the_service_checks_are_each_bounded_by_the_setting(tmp_path):
    service = ServiceReadiness(service_settings(tmp_path, check_timeout_s=0.3), hangs_mapping, hangs_mapping)
    ready, body = run(service())
    assert service.timeout_s == 0.3
    assert ready is False and body["failing"] == ["tcp_listener", "model"]
    assert body["checks"]["tcp_listener"]["detail"] == "no answer within 0.3 s"
    assert body["checks"]["model"]["detail"] == "no answer within 0.3 s"
    assert (body["checks"]["database"]["ok"], body["checks"]["database"]["detail"]) == (True, "sqlite answers")
    assert body["checks"]["storage_root"]["ok"] is True


def test_the_service_is_ready_when_every_check_passes(tmp_path):
    listening = status_of(listening=True, port=4567)
    model = status_of(loaded=True, preset="vggt-1b", device="cuda")
    ready, body = run(ServiceReadiness(service_settings(tmp_path), listening, model)())
    assert ready is True and list(body["checks"]) == ["tcp_listener", "model", "database", "storage_root"]


READY_GOAL_S = 5.0  # /readyz turns 503 within this long of the database going away (tests/integration/test_readiness.py)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [(0.0, False), (0.001, True), (2.0, True), (4.0, True), (4.001, False), (READY_GOAL_S, False)],
)
def test_the_check_timeout_is_over_0_and_at_most_4_s(tmp_path, value, accepted):
    """A hung database is seen only after the timeout: at most 4 s keeps a second for the probe interval."""
    if accepted:
        assert service_settings(tmp_path, check_timeout_s=value).health.check_timeout_s == value
    else:
        with pytest.raises(ValueError, match="health.check_timeout_s"):
            service_settings(tmp_path, check_timeout_s=value)


def test_the_check_timeout_defaults_to_2_s(tmp_path):
    assert ServiceReadiness(service_settings(tmp_path), hangs_mapping, hangs_mapping).timeout_s == 2.0


def test_the_database_check_answers_on_sqlite(tmp_path):
    check = database_check(f"sqlite:///{tmp_path / 'app.db'}", timeout_s=2.0)
    assert check() == "sqlite answers"


def test_an_unreachable_database_fails_in_one_line_without_its_password():
    check = database_check(f"postgresql+psycopg://vggt:{SECRET}@127.0.0.1:1/vggt", timeout_s=2.0)
    with pytest.raises(CheckFailed) as caught:
        check()
    assert SECRET not in str(caught.value) and "\n" not in str(caught.value)
    assert "OperationalError" in str(caught.value)


def test_the_storage_check_writes_and_leaves_nothing(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    assert storage_check(LocalRoot(root))() == f"{root} is writable"
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_a_storage_root_not_made_yet_is_made_as_the_store_would(tmp_path):
    root = tmp_path / "store"
    assert storage_check(LocalRoot(root))() == f"{root} is writable"
    assert root.is_dir() and list(root.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_storage_root_fails(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    root.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(PermissionError):
            storage_check(LocalRoot(root))()
    finally:
        root.chmod(stat.S_IRWXU)


def test_a_storage_root_under_a_file_fails(tmp_path):
    """Works as root too: nothing can be written under a regular file."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    result = run(run_check(ThreadProbe(storage_check(LocalRoot(blocker / "store"))), 2.0))
    assert not result.ok and "NotADirectoryError" in result.detail


def status_of(**state):
    async def status():
        return state

    return status


@pytest.mark.parametrize(
    ("state", "ok", "detail"),
    [
        ({"loaded": True, "preset": "vggt-1b", "device": "cuda"}, True, "vggt-1b on cuda"),
        ({"loaded": True, "preset": "tiny", "device": "cpu"}, True, "tiny on cpu (untrained: model.preset is tiny)"),
        ({"loaded": False, "preset": "vggt-1b", "error": "checkpoint /m.pt not found"}, False, "VGGT model not loaded: checkpoint /m.pt not found"),
        ({"loaded": True, "preset": "vggt-1b", "broken": "CUDA error: x"}, False, "VGGT inference is broken: CUDA error: x"),
    ],
)
def test_the_model_check(state, ok, detail):
    result = run(run_check(model_probe(status_of(**state)), 1.0))
    assert (result.ok, result.detail) == (ok, detail)


def test_the_listener_check():
    up = run(run_check(listener_probe(status_of(listening=True, port=4567)), 1.0))
    down = run(run_check(listener_probe(status_of(listening=False, port=None)), 1.0))
    assert (up.ok, up.detail) == (True, "listening on port 4567")
    assert (down.ok, down.detail) == (False, "the TCP server is not listening")
