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
passing through the ingress. Only the upload (images) and the GLB bytes
(reply) cross the ingress, once each. A VIDEO upload is spooled to a file by
the TCP server and only its path travels; the FrameExtractor replica opens
that path, which is why the spool directory must be on storage every node
can read in a multi-node cluster (single-node deployments need nothing).

Errors: a `ServiceError` raised in a replica reaches the caller wrapped in a
`RayTaskError` (a subclass of both RayTaskError and the original class);
`unwrap_service_error` turns it back into the plain `ServiceError` so the
server sends its `ERROR_*` code and logs its message. Anything else (a dead
replica, a bug) propagates and the server answers `ERROR_INTERNAL`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, Protocol, Sequence

from ray.serve.handle import DeploymentHandle

from serve_app.accounts import Accounts
from serve_app.result_cache import ResultCache
from serve_app.stages import Job, Reconstruction, Upload
from tcp_proxy.backend import GlbInfo, User
from tcp_proxy.errors import ServiceError


class CacheMetrics(Protocol):
    def record_cache_lookup(self, hit: bool) -> None: ...


class ServeBackend:
    """tcp_proxy.backend.Backend: accounts in this process, the stages through deployment handles."""

    def __init__(
        self,
        accounts: Accounts,
        stages: Sequence[DeploymentHandle],
        cache: ResultCache | None = None,
        metrics: CacheMetrics | None = None,
    ) -> None:
        """stages: one handle per stage deployment, in the order of STAGES; cache: None computes every upload."""
        self._accounts = accounts
        self._stages = list(stages)
        self._cache = cache
        self._metrics = metrics

    async def login(self, username: str, password: str, address: str) -> User | None:
        return await self._accounts.login(username, password, address)

    async def get_glb(self, hash_text: str) -> bytes:
        return await self._accounts.get_glb(hash_text)

    async def list_glbs(self, user: User, limit: int) -> list[GlbInfo]:
        return await self._accounts.list_glbs(user, limit)

    async def reconstruct_images(self, user: User, images: Sequence[bytes]) -> Reconstruction:
        images = tuple(images)
        return await self._reconstruct(Upload(Job(user.id, f"images:{len(images)}"), images=images))

    async def reconstruct_video(self, user: User, video_path: str) -> Reconstruction:
        return await self._reconstruct(Upload(Job(user.id, "video"), video_path=video_path))

    async def _reconstruct(self, upload: Upload) -> Reconstruction:
        started = time.perf_counter()
        if self._cache is not None and upload.job.user_id is not None:
            key = await asyncio.to_thread(self._cache.key, upload)
            stored = await self._accounts.stored_result(upload.job.user_id, key)
            if self._metrics is not None:
                self._metrics.record_cache_lookup(stored is not None)
            if stored is not None:
                return dataclasses.replace(stored, timings={"cache": time.perf_counter() - started})
            upload = dataclasses.replace(upload, job=dataclasses.replace(upload.job, source_digest=key))
        response: Any = upload
        for handle in self._stages:
            response = handle.run.remote(response)
        result: Reconstruction = await _await(response)
        return dataclasses.replace(result, timings={**result.timings, "pipeline": time.perf_counter() - started})


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
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ServiceError) and not _is_ray_wrapper(current):
            return current
        nxt = getattr(current, "cause", None)
        if not isinstance(nxt, BaseException):
            nxt = current.__cause__
        current = nxt
    if isinstance(exc, ServiceError):  # a wrapper without a usable cause: rebuild the plain error
        plain_cls = next(c for c in type(exc).__mro__ if issubclass(c, ServiceError) and not _is_ray_class(c))
        return plain_cls(str(getattr(exc, "message", "") or ""))
    return exc


def _is_ray_class(cls: type) -> bool:
    return cls.__module__.startswith("ray.")


def _is_ray_wrapper(exc: BaseException) -> bool:
    return _is_ray_class(type(exc))
