"""The RUNNING replicas of a deployment as Serve's controller sees them, followed from a replica.

`TCPIngress` follows VGGTInference's count and hands it to its admission
(`tcp_proxy.admission.Admission.set_replicas`), so the wait estimate divides
by the inference replicas running now: when the autoscaler adds one, the
next request is counted to wait half as long. The controller is asked with
`serve.status()` in a worker thread, bounded by a timeout, every
`REPLICA_POLL_S`; the event loop never waits on it. A failed or slow answer
keeps the last count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("ray.serve")

# how often the controller is asked: each answer (`serve.status()`: every application's details) cost the
# ingress ~0.13 CPU s and the controller more on a 2-core machine, a tenth of a core at 3 s; a replica takes
# tens of seconds to start, so counting it up to 10 s late changes little
REPLICA_POLL_S = 10.0
REPLICA_STATUS_TIMEOUT_S = 5.0  # the most one question may take


def running_replicas(app_name: str, deployment: str) -> int | None:
    """RUNNING replicas of `deployment` in application `app_name` (blocking); None if Serve does not know it."""
    from ray import serve
    from ray.serve._private.common import ReplicaState

    app = serve.status().applications.get(app_name)
    if app is None or deployment not in app.deployments:
        return None
    return app.deployments[deployment].replica_states.get(ReplicaState.RUNNING, 0)


async def follow_running_replicas(
    app_name: str,
    deployment: str,
    apply: Callable[[int], None],
    *,
    period_s: float = REPLICA_POLL_S,
    timeout_s: float = REPLICA_STATUS_TIMEOUT_S,
    count: Callable[[str, str], int | None] = running_replicas,
) -> None:
    """Call `apply(n)` whenever the RUNNING count of `deployment` changes; runs until cancelled."""
    last: int | None = None
    while True:
        replicas = await _ask(count, app_name, deployment, timeout_s)
        if replicas is not None and replicas != last:
            log.info("%s replicas running: %d (the admission's wait estimate divides by them)", deployment, replicas)
            apply(replicas)
            last = replicas
        await asyncio.sleep(period_s)


async def _ask(count: Callable[[str, str], int | None], app_name: str, deployment: str, timeout_s: float) -> int | None:
    """`count(app_name, deployment)` in a thread; None if it fails or takes over `timeout_s` (it is left to finish).

    `asyncio.wait`, not `wait_for`: on Python 3.11 `wait_for` can swallow a cancellation that
    arrives as the thread finishes, and the caller's loop would never stop.
    """
    answer = asyncio.ensure_future(asyncio.to_thread(count, app_name, deployment))
    done, _ = await asyncio.wait({answer}, timeout=timeout_s)
    if not done:
        log.debug("the replicas of %s were not counted within %.0f s", deployment, timeout_s)
        return None
    try:
        return answer.result()
    except Exception:  # the controller is restarting: keep the last count
        log.debug("could not count the replicas of %s", deployment, exc_info=True)
        return None
