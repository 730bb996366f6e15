"""`ServeBackend`: the TCP server's `Backend` over a running Ray Serve application.

LOGIN, GET_GLB and LIST go to `Accounts` in this process. A reconstruction
first looks for the same upload among the user's stored results
(`serve_app.result_cache`); if there is none, it is the stage deployments
chained in the order of `serve_app.stages.STAGES`:

    response = Upload(...)
    for handle in stages:                      # FrameExtractor, VGGTInference, GlbExporter
        response = handle.run.remote(response)
    reconstruction = await response

Each call gets the previous call's `DeploymentResponse` as its argument, so
Serve hands the next replica an object reference: the decoded frames go from
the FrameExtractor replica to the VGGTInference replica, and the predictions
from there to the GlbExporter replica, through the Ray object store, without
passing through the ingress. Only the upload and the GLB bytes (reply)
cross the ingress, once each. No path crosses a deployment: a VIDEO upload,
spooled to a file local to the ingress replica by the TCP server, travels as
its bytes (`Upload.from_video_file` maps the file; Ray copies it into the
object store, from which the FrameExtractor replica reads it on any node).

Errors: a `ServiceError` raised in a replica reaches the caller wrapped in a
`RayTaskError` (a subclass of both RayTaskError and the original class);
`unwrap_service_error` turns it back into the plain `ServiceError` so the
server sends its `ERROR_*` code and logs its message. A run whose stage
replica died (crash, OOM kill, node loss: `replica_lost`) is run again, up to
`pipeline.attempts` times, after a pause in which Serve replaces the replica;
if the failed run had already stored its GLB (a row with the upload's key,
made since the first attempt), that GLB is the answer, so a retry never
leaves a second row or file. Anything else (a bug) propagates and the server
answers `ERROR_INTERNAL`.

Every upload's key is stored with its GLB (`Job.source_digest`), also when
reusing results is switched off (`storage.reuse_results`): the retry needs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
from ray import exceptions as ray_exceptions
from ray.serve import exceptions as serve_exceptions
from ray.serve.handle import DeploymentHandle

from serve_app.accounts import Accounts
from serve_app.config import AppSettings
from serve_app.result_cache import ResultCache
from serve_app.stages import Job, Reconstruction, Upload
from serve_app.storage.glb_download import FileDownload
from serve_app.storage.models import utcnow
from tcp_proxy.backend import GlbInfo, User
from tcp_proxy.errors import ServiceError

log = logging.getLogger(__name__)

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


class BackendMetrics(Protocol):
    def record_cache_lookup(self, hit: bool) -> None: ...

    def record_retry(self) -> None: ...


class ServeBackend:
    """tcp_proxy.backend.Backend: accounts in this process, the stages through deployment handles."""

    def __init__(
        self,
        accounts: Accounts,
        stages: Sequence[DeploymentHandle],
        settings: AppSettings,
        metrics: BackendMetrics | None = None,
    ) -> None:
        """stages: one handle per stage deployment, in the order of STAGES."""
        self._accounts = accounts
        self._stages = list(stages)
        self._keys = ResultCache(settings)
        self._reuse = settings.storage.reuse_results
        self._retry = settings.pipeline
        self._metrics = metrics
        self.retries = 0  # runs repeated because a stage replica died (for status)

    async def login(self, username: str, password: str, address: str) -> User | None:
        return await self._accounts.login(username, password, address)

    async def open_glb(self, hash_text: str) -> FileDownload:
        return await self._accounts.open_glb(hash_text)

    async def list_glbs(self, user: User, limit: int) -> list[GlbInfo]:
        return await self._accounts.list_glbs(user, limit)

    async def reconstruct_images(self, user: User, images: Sequence[bytes]) -> Reconstruction:
        # arrays over the caller's buffers (views of the spooled upload): Ray ships them to the decode
        # replica through its object store without a copy in this process
        arrays = tuple(np.frombuffer(image, dtype=np.uint8) for image in images)
        return await self._reconstruct(Upload(Job(user.id, f"images:{len(arrays)}"), images=arrays))

    async def reconstruct_video(self, user: User, video_path: str) -> Reconstruction:
        upload = Upload.from_video_file(Job(user.id, "video"), video_path)  # bytes, not the node-local path
        return await self._reconstruct(upload)

    async def _reconstruct(self, upload: Upload) -> Reconstruction:
        started = time.perf_counter()
        user_id = upload.job.user_id
        key = await asyncio.to_thread(self._keys.key, upload)
        if self._reuse and user_id is not None:
            stored = await self._accounts.stored_result(user_id, key)
            if self._metrics is not None:
                self._metrics.record_cache_lookup(stored is not None)
            if stored is not None:
                return dataclasses.replace(stored, timings={"cache": time.perf_counter() - started})
        upload = dataclasses.replace(upload, job=dataclasses.replace(upload.job, source_digest=key))
        result = await self._run_with_retries(upload, key)
        return dataclasses.replace(result, timings={**result.timings, "pipeline": time.perf_counter() - started})

    async def _run_with_retries(self, upload: Upload, key: str) -> Reconstruction:
        """Run the stages; when a stage replica dies, run them again (Serve routes to a healthy or
        restarted replica), unless the failed run had already stored its GLB: then that is the result."""
        first_started = utcnow()
        attempt = 1
        while True:
            try:
                return await self._run_stages(upload)
            except Exception as exc:
                if attempt >= self._retry.attempts or not replica_lost(exc):
                    raise
                log.warning("reconstruction attempt %d lost its replica (%s); retrying", attempt, type(exc).__name__)
                self.retries += 1
                if self._metrics is not None:
                    self._metrics.record_retry()
            await asyncio.sleep(self._retry.retry_delay_s * 2 ** (attempt - 1))
            if upload.job.user_id is not None:
                stored = await self._accounts.stored_result(upload.job.user_id, key, since=first_started)
                if stored is not None:  # the replica died after storing: no second row, no second file
                    return stored
            attempt += 1

    async def _run_stages(self, upload: Upload) -> Reconstruction:
        response: Any = upload
        for handle in self._stages:
            response = handle.run.remote(response)
        return await _await(response)


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


def _is_ray_class(cls: type) -> bool:
    return cls.__module__.startswith("ray.")


def _is_ray_wrapper(exc: BaseException) -> bool:
    return _is_ray_class(type(exc))


def replica_lost(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) says a replica, its node or its output was lost."""
    return any(isinstance(current, REPLICA_LOST) for current in _wrapped(exc))


def _wrapped(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps: Ray's `cause` (RayTaskError) or the `__cause__` chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        nxt = getattr(current, "cause", None)
        current = nxt if isinstance(nxt, BaseException) else current.__cause__
