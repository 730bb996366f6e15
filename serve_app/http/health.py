"""Liveness and readiness, answered on Serve's HTTP port by `ShareViewer`: `GET /healthz`, `GET /readyz`.

`/healthz` is 200 while the application answers HTTP at all. `/readyz` runs
every readiness check at once and answers 200 with
`{"ready": true, "checks": {...}}` only when all pass, else 503 with the
same body, `"ready": false` and the failing checks named in `"failing"`.
The checks of the service (`service_checks`): the TCP listener is up, the
VGGT model is loaded (the untrained "tiny" preset counts only because the
config asks for it), the database answers a query and the storage root
takes a write.

Each check is bounded in time (the setting `health.check_timeout_s`, read
once by `ServiceReadiness`): a hung database makes its check fail after
that long, never the endpoint hang. A blocking check
(database, storage) runs in a thread of its own; while one is still under
way the next probe waits on it instead of starting another, and one that
stays stuck past `ABANDON_AFTER_S` is left behind (at most `MAX_ABANDONED`
at once) so that a database that comes back is seen at the next probe.
Nothing here imports Ray: the deployment passes the TCP ingress's answers
in as plain async callables.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

ABANDON_AFTER_S = 30.0  # a blocking check still stuck after this is left behind and a new one started
MAX_ABANDONED = 4  # stuck threads kept at most; beyond that the check waits on the stuck one
PROBE_KEY_PREFIX = ".readyz-"  # the storage check's file, beside out/ (which the consistency check owns)

Probe = Callable[[], Awaitable[str]]  # the detail when the check passes; raises when it fails


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, "seconds": round(self.seconds, 3)}


class CheckFailed(Exception):
    """A check that ran and found its component not ready; the message says why."""


async def run_check(probe: Probe, timeout_s: float) -> CheckResult:
    """`probe`'s result within `timeout_s`; a timeout or any error is a failed check, never raised."""
    start = time.monotonic()
    try:
        detail = await asyncio.wait_for(probe(), timeout_s)
    except TimeoutError:
        return CheckResult(False, f"no answer within {timeout_s:g} s", time.monotonic() - start)
    except Exception as exc:  # a failing component: its reason, in one line
        return CheckResult(False, _one_line(exc), time.monotonic() - start)
    return CheckResult(True, detail, time.monotonic() - start)


async def readiness(checks: Mapping[str, Probe], timeout_s: float) -> tuple[bool, dict[str, Any]]:
    """Run every check at once; (all passed, the `/readyz` body)."""
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[name], timeout_s) for name in names))
    by_name = dict(zip(names, results, strict=True))
    ready = all(result.ok for result in results)
    body: dict[str, Any] = {"ready": ready, "checks": {name: result.as_json() for name, result in by_name.items()}}
    if not ready:
        body["failing"] = [name for name, result in by_name.items() if not result.ok]
    return ready, body


class ThreadProbe:
    """A blocking check as a `Probe`: run in a daemon thread; a run still under way is shared by later probes."""

    def __init__(self, check: Callable[[], str], *, abandon_after_s: float = ABANDON_AFTER_S) -> None:
        self._check = check
        self._abandon_after_s = abandon_after_s
        self._pending: asyncio.Future[str] | None = None
        self._started = 0.0
        self._abandoned = 0  # threads left behind that have not returned yet (counted on the event loop)

    async def __call__(self) -> str:
        loop = asyncio.get_running_loop()
        pending = self._pending
        if pending is not None and not pending.done() and self._stuck():
            self._abandoned += 1
            pending.add_done_callback(self._returned)
            pending = None
        if pending is None or pending.done():
            pending = self._pending = self._start(loop)
        return await asyncio.shield(pending)  # a timed-out probe leaves the run going for the next one

    @property
    def abandoned(self) -> int:
        return self._abandoned

    def _stuck(self) -> bool:
        return time.monotonic() - self._started > self._abandon_after_s and self._abandoned < MAX_ABANDONED

    def _returned(self, _future: asyncio.Future[str]) -> None:
        self._abandoned -= 1

    def _start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[str]:
        future: asyncio.Future[str] = loop.create_future()

        def settle(result: str | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result or "")

        def work() -> None:
            try:
                result, error = self._check(), None
            except BaseException as exc:  # handed to the awaiting probe
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(settle, result, error)
            except RuntimeError:  # the loop closed meanwhile: nobody waits
                pass

        future.add_done_callback(_retrieve)
        self._started = time.monotonic()
        threading.Thread(target=work, name="readiness-check", daemon=True).start()
        return future


def _retrieve(future: asyncio.Future[str]) -> None:
    """Mark a failed run's error as seen (a run nobody awaited any more must not warn)."""
    if not future.cancelled():
        future.exception()


def database_check(url: str, timeout_s: float) -> Callable[[], str]:
    """`SELECT 1` on a new connection each time (no pooled connection to go stale), connecting within `timeout_s`."""
    from serve_app.storage.database import ping, probe_engine

    engine = probe_engine(url, connect_timeout_s=timeout_s)

    password = engine.url.password

    def check() -> str:
        try:
            ping(engine)
        except Exception as exc:  # the driver's reason, never the password a driver might quote
            text = _one_line(exc)
            raise CheckFailed(text.replace(str(password), "***") if password else text) from None
        return f"{engine.dialect.name} answers"

    return check


def storage_check(root: Any) -> Callable[[], str]:
    """Write and delete a small file (or object) at the storage root (`serve_app.storage.blob_root`)."""
    key = f"{PROBE_KEY_PREFIX}{socket.gethostname()}-{os.getpid()}"

    def check() -> str:
        root.write(key, b"ready\n")  # as the GLB store writes: a local root's folder is made if need be
        root.delete(key)
        return f"{root.location} is writable"

    return check


def listener_probe(listening: Callable[[], Awaitable[Mapping[str, Any]]]) -> Probe:
    """The TCP listener check over the TCP ingress's `{"listening": bool, "port": int}`."""

    async def probe() -> str:
        state = await listening()
        if not state.get("listening"):
            raise CheckFailed("the TCP server is not listening")
        return f"listening on port {state.get('port')}"

    return probe


def model_probe(status: Callable[[], Awaitable[Mapping[str, Any]]]) -> Probe:
    """The model check over `InferenceStage.status()`: loaded and not broken; the untrained preset says so."""

    async def probe() -> str:
        state = await status()
        if state.get("broken"):
            raise CheckFailed(f"VGGT inference is broken: {state['broken']}")
        if not state.get("loaded"):
            raise CheckFailed(f"VGGT model not loaded: {state.get('error') or 'unknown reason'}")
        untrained = " (untrained: model.preset is tiny)" if state.get("preset") == "tiny" else ""
        return f"{state.get('preset')} on {state.get('device')}{untrained}"

    return probe


def service_checks(
    settings: Any,
    listening: Callable[[], Awaitable[Mapping[str, Any]]],
    model_status: Callable[[], Awaitable[Mapping[str, Any]]],
    timeout_s: float,
) -> dict[str, Probe]:
    """The service's readiness checks, in the order `/readyz` lists them."""
    from serve_app.storage.blob_root import settings_root

    return {
        "tcp_listener": listener_probe(listening),
        "model": model_probe(model_status),
        "database": ThreadProbe(database_check(settings.storage.database_url, timeout_s)),
        "storage_root": ThreadProbe(storage_check(settings_root(settings.storage))),
    }


class ServiceReadiness:
    """`/readyz` of the service: `service_checks`, each bounded by `health.check_timeout_s` (read once, here)."""

    def __init__(
        self,
        settings: Any,
        listening: Callable[[], Awaitable[Mapping[str, Any]]],
        model_status: Callable[[], Awaitable[Mapping[str, Any]]],
    ) -> None:
        self.timeout_s: float = settings.health.check_timeout_s
        self.checks = service_checks(settings, listening, model_status, self.timeout_s)

    async def __call__(self) -> tuple[bool, dict[str, Any]]:
        """(all passed, the `/readyz` body)."""
        return await readiness(self.checks, self.timeout_s)


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return text if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {text}"
