"""`HandleStageRunner`: one reconstruction through the stage deployments' handles, and what Ray errors mean.

`ServeBackend` runs an upload through a `StageRunner`; this is the one
over Ray Serve. The stage deployments are chained in the order of
`serve_app.stages.STAGES`:

    response = upload
    for handle in stages:                      # FrameExtractor, VGGTInference, GlbExporter
        response = handle.run.remote(response)
    reconstruction = await response

Each call gets the previous call's `DeploymentResponse` as its argument, so
Serve hands the next replica an object reference: the decoded frames go from
the FrameExtractor replica to the VGGTInference replica, and the predictions
from there to the GlbExporter replica, through the Ray object store, without
passing through the ingress. Only the upload and the GLB bytes (reply)
cross the ingress, once each.

Progress (a browser job's state): given `on_stage`, `run` calls it with
each stage's name as the stage starts: the first at once, each next one when
the object the previous stage produced is ready. Readiness is polled with
`ray.wait(fetch_local=False)`, so the frames and predictions still never
come into the ingress.

In flight: `in_flight` counts the runs handed to the stages whose result
has not come back (`TCPIngress.status()` reports it as `in_stages`): with
it, a caller can wait until requests are really inside the stages.

Errors: a `ServiceError` raised in a replica reaches the caller wrapped in a
`RayTaskError` (a subclass of both RayTaskError and the original class);
`unwrap_service_error` turns it back into the plain `ServiceError` so the
server sends its `ERROR_*` code and logs its message. `replica_lost` tells a
run whose stage replica died (crash, OOM kill, node loss), which the backend
runs again, from any other failure.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Iterator, Sequence

import ray
from ray import exceptions as ray_exceptions
from ray.serve import exceptions as serve_exceptions
from ray.serve.handle import DeploymentHandle

from serve_app.stages import STAGES, Reconstruction, Upload
from tcp_proxy.errors import ServiceError

from . import stage_handles

# What a dead or unreachable replica (or the loss of its node, or of the object it produced)
# looks like to a caller. Retrying on another replica may succeed; anything else is final.
REPLICA_LOST = (
    ray_exceptions.RayActorError,  # ActorDiedError, ActorUnavailableError
    ray_exceptions.WorkerCrashedError,
    ray_exceptions.NodeDiedError,
    ray_exceptions.ObjectLostError,  # OwnerDiedError, ObjectReconstructionFailedError
    ray_exceptions.OutOfMemoryError,  # the worker killed by Ray's memory monitor
    serve_exceptions.DeploymentUnavailableError,
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
READY_POLL_S = 0.2  # how often a stage's output is looked for, while a browser job follows its progress


class HandleStageRunner:
    """serve_app.serve_backend.StageRunner over the handles of the stage deployments."""

    def __init__(self, handles: Sequence[DeploymentHandle]) -> None:
        """handles: one per stage deployment, in the order of STAGES."""
        self._handles = list(handles)
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Runs handed to the stages whose reconstruction (or error) has not come back yet."""
        return self._in_flight

    @classmethod
    def of_app(cls, app_name: str) -> "HandleStageRunner":
        """The runner over a running application's stage deployments (from outside the application)."""
        return cls(stage_handles(app_name))

    async def run(self, upload: Upload, on_stage: Callable[[str], None] | None = None) -> Reconstruction:
        self._in_flight += 1
        try:
            response: Any = upload
            responses = []
            for handle in self._handles:
                response = handle.run.remote(response)
                responses.append(response)
            if on_stage is not None:
                await _follow_stages(responses, on_stage)
            return await _await(response)
        finally:
            self._in_flight -= 1

    def is_replica_lost(self, exc: BaseException) -> bool:
        return replica_lost(exc)


async def _follow_stages(responses: list[Any], on_stage: Callable[[str], None]) -> None:
    """Call `on_stage(name)` as each stage starts: when the output of the one before is ready (or failed:
    the caller's await of the last response reports that)."""
    for name, response in zip(STAGE_NAMES, responses):
        on_stage(name)
        if response is responses[-1]:
            return
        try:
            ref = await response._to_object_ref()
            while not ray.wait([ref], num_returns=1, timeout=0, fetch_local=False)[0]:
                await asyncio.sleep(READY_POLL_S)
        except Exception:
            return


async def _await(response: Any) -> Any:
    """Await a DeploymentResponse, re-raising a replica's ServiceError as itself."""
    try:
        return await response
    except ServiceError as exc:  # RayTaskError(SomeServiceError) is one too
        raise unwrap_service_error(exc) from None
    except Exception as exc:
        unwrapped = unwrap_service_error(exc)
        if unwrapped is not exc:
            raise unwrapped from None
        raise


def unwrap_service_error(exc: BaseException) -> BaseException:
    """The plain ServiceError inside Ray's wrapping (RayTaskError chains), else `exc`."""
    for current in _wrapped(exc):
        if isinstance(current, ServiceError) and not _is_ray_wrapper(current):
            return current
    if isinstance(exc, ServiceError):  # a wrapper without a usable cause: rebuild the plain error
        plain_cls = next(c for c in type(exc).__mro__ if issubclass(c, ServiceError) and not _is_ray_class(c))
        return plain_cls(str(getattr(exc, "message", "") or ""))
    return exc


def replica_lost(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says a replica, its node or its output was lost."""
    return any(isinstance(current, REPLICA_LOST) for current in _wrapped(exc))


def _is_ray_class(cls: type) -> bool:
    return cls.__module__.startswith("ray.")


def _is_ray_wrapper(exc: BaseException) -> bool:
    return _is_ray_class(type(exc))


def _wrapped(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps: Ray's `cause` (RayTaskError) or the `__cause__` chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        nxt = getattr(current, "cause", None)
        current = nxt if isinstance(nxt, BaseException) else current.__cause__
