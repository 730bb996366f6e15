"""`ServeBackend`: the TCP server's `Backend` over Ray Serve deployment handles.

The reconstruction pipeline reads top to bottom in `_reconstruct`:

    frames      = FrameExtractor.decode_images(images) | .sample_video(path)
    predictions = VGGTInference.predict(frames)
    stored      = GlbExporter.export_and_store(predictions, user, name)

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

LOGIN and GET_GLB are handled by an `Accounts` object: inside the ingress
replica that is the ingress itself (local calls, no hop); for the standalone
proxy (`python -m tcp_proxy`) it is the ingress deployment's handle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from serve_app.errors import ServiceError
from tcp_proxy.backend import Reconstruction, User

log = logging.getLogger(__name__)

DEFAULT_APP_NAME = "vggt"
INGRESS_NAME = "TCPIngress"
FRAMES_NAME = "FrameExtractor"
INFERENCE_NAME = "VGGTInference"
EXPORTER_NAME = "GlbExporter"


# --- what travels between the stage replicas (through the object store) ---------------


@dataclass
class FrameBatch:
    """FrameExtractor's output: RGB uint8 frames plus what the later stages report."""

    frames: list[np.ndarray]
    source: str  # "images" or "video"
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PredictionBatch:
    """VGGTInference's output: the numpy predictions dict of `serve_app.vggt.runner`."""

    predictions: dict[str, np.ndarray]
    frame_count: int
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class StoredReconstruction:
    """GlbExporter's output: the stored GLB and every stage's time."""

    hashed_name: str
    glb: bytes
    frame_count: int
    timings: dict[str, float] = field(default_factory=dict)


# --- errors --------------------------------------------------------------------------


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


# --- accounts: LOGIN and GET_GLB ------------------------------------------------------


class Accounts(Protocol):
    async def login(self, username: str, password: str, address: str) -> User | None: ...

    async def get_glb(self, hash_text: str) -> bytes: ...


class HandleAccounts:
    """Accounts of a running app, reached through its ingress deployment's handle."""

    def __init__(self, ingress: Any):
        self._ingress = ingress

    async def login(self, username: str, password: str, address: str) -> User | None:
        return await _await(self._ingress.login.remote(username, password, address))

    async def get_glb(self, hash_text: str) -> bytes:
        return await _await(self._ingress.get_glb.remote(hash_text))


# --- the backend ----------------------------------------------------------------------


class ServeBackend:
    """tcp_proxy.backend.Backend implemented with deployment handles."""

    def __init__(self, *, frames: Any, inference: Any, exporter: Any, accounts: Accounts):
        self._frames = frames
        self._inference = inference
        self._exporter = exporter
        self._accounts = accounts

    @classmethod
    def from_app(cls, app_name: str = DEFAULT_APP_NAME) -> "ServeBackend":
        """The backend of a running application (call after `ray.init(address=...)`)."""
        from ray import serve

        return cls(
            frames=serve.get_deployment_handle(FRAMES_NAME, app_name),
            inference=serve.get_deployment_handle(INFERENCE_NAME, app_name),
            exporter=serve.get_deployment_handle(EXPORTER_NAME, app_name),
            accounts=HandleAccounts(serve.get_app_handle(app_name)),
        )

    async def login(self, username: str, password: str, address: str) -> User | None:
        return await self._accounts.login(username, password, address)

    async def get_glb(self, hash_text: str) -> bytes:
        return await self._accounts.get_glb(hash_text)

    async def reconstruct_images(self, user: User, images: Sequence[bytes]) -> Reconstruction:
        images = list(images)
        frames = self._frames.decode_images.remote(images)
        return await self._reconstruct(user, frames, f"images:{len(images)}")

    async def reconstruct_video(self, user: User, video_path: str) -> Reconstruction:
        frames = self._frames.sample_video.remote(video_path)
        return await self._reconstruct(user, frames, "video")

    async def _reconstruct(self, user: User, frames: Any, original_name: str) -> Reconstruction:
        started = time.perf_counter()
        predictions = self._inference.predict.remote(frames)
        stored: StoredReconstruction = await _await(
            self._exporter.export_and_store.remote(predictions, user.id, original_name)
        )
        timings = dict(stored.timings)
        timings["pipeline"] = time.perf_counter() - started
        return Reconstruction(name=f"{stored.hashed_name}.glb", glb=stored.glb, timings=timings)
