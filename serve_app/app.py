"""The Ray Serve application: four deployments and the builder `build_app`.

`config/serve.yaml` points at `serve_app.app:build_app`; its `args` block is
`AppSettings.from_dict` input, read once here. The deployments are thin
wrappers over the plain-Python stages:

| deployment | wraps | resources |
| --- | --- | --- |
| `TCPIngress` | `tcp_proxy.server` + `ServeBackend`, users (login), GET_GLB | 0.1 CPU, 1 replica (it binds the port) |
| `FrameExtractor` | `Pipeline.decode_images` / `.decode_video` (`serve_app.frames`) | 0.5 CPU |
| `VGGTInference` | `serve_app.vggt.runner.InferenceRunner` | 1 CPU + 1 GPU, or 1 CPU without GPU |
| `GlbExporter` | `Pipeline.export` / `.save` (`serve_app.export`, `GlbStore`) | 0.25 CPU |

Every deployment states its CPU share: Serve's default of one CPU per
replica would leave replicas pending on a small machine (2 cores hold the
whole app: 0.1 + 0.5 + 1 + 0.25). Replica counts and CPU shares of the
non-inference deployments can be changed in the YAML's `deployments:`
section; leave `ray_actor_options` of VGGTInference to the builder, which
decides the GPU.

GPU placement (`_inference_placement`): with `model.device: auto` the
builder asks the cluster (`ray.cluster_resources()`; under `serve run
config.yaml` the builder runs inside the cluster, so Ray is initialised).
With a GPU, VGGTInference asks for `num_gpus: 1` and runs on cuda. Without
one it says so in the log and runs on CPU, rather than leaving a replica
pending forever for a GPU that never comes. `device: cuda` always asks for
a GPU (for autoscaling clusters that add GPU nodes on demand); `device: cpu`
never does. When the builder is called outside Ray (`serve run
serve_app.app:build_app ...` imports it before connecting, and `serve
build`), it falls back to the local machine's CUDA devices.

Model availability (health design): the model loads once, in the
VGGTInference constructor. A missing or corrupt checkpoint does NOT fail the
constructor or the health check: that would make Serve restart the replica
in a loop (each time re-reading a multi-GB file) and keep the application
from ever becoming RUNNING, which would take LOGIN and GET_GLB down with it.
Instead the replica starts in a degraded state: the log says (once, at
ERROR level) why and how to get `model.pt` (`python scripts/fetch_weights.py`),
the `vggt_model_loaded` gauge is 0, `status()` reports it, every `predict`
answers `ModelUnavailableError` (`ERROR_MODEL_NOT_LOADED` on the wire) at
once, and the ingress logs the model state when it starts. `check_health`
fails only for breakage a restart can fix: a CUDA error that leaves the
device unusable (device-side assert, illegal memory access, ...). Fix the
checkpoint and redeploy (`serve deploy`/`serve run` again) to load it.

Housekeeping in `check_health` (every 10 s): the replicas hand freed
heap memory back to the OS (`malloc_trim`), so an idle service shrinks back
after big requests, and VGGTInference refreshes its gauge. The ingress runs
at most LOGIN_CONCURRENCY scrypt verifications at once (each ~128 MiB).

Paths: the database URL, storage root, checkpoint and spool dir are used as
given; relative ones resolve against the replicas' working directory, which
under `serve run` is the directory `serve run` was started from (checked).
For `serve deploy` onto a long-running cluster, give absolute paths. A multi-node cluster
needs the storage root, the SQLite file (or use a server database URL) and
the spool dir on storage shared by the nodes, or the deployments pinned to
one node.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
import os
import time
from typing import Any

from ray import serve
from ray.serve import Application

from serve_app.config import AppSettings, ModelSettings
from serve_app.errors import ModelUnavailableError, ServiceError
from serve_app.export import prediction_keys
from serve_app.metrics import service_metrics
from serve_app.serve_backend import (
    EXPORTER_NAME,
    FRAMES_NAME,
    INFERENCE_NAME,
    INGRESS_NAME,
    FrameBatch,
    PredictionBatch,
    ServeBackend,
    StoredReconstruction,
)
from tcp_proxy.backend import User

log = logging.getLogger("ray.serve")  # Serve's logger: shows in `serve run` output and the replica logs

INGRESS_CPUS = 0.1
FRAMES_CPUS = 0.5
INFERENCE_CPUS = 1.0
EXPORTER_CPUS = 0.25
LOGIN_CONCURRENCY = 2  # scrypt verifications at once in the ingress (each ~128 MiB, CPU-bound)
RECENT_REQUESTS = 100  # kept for TCPIngress.recent_requests()

WEIGHTS_HINT = (
    "reconstructions answer ERROR_MODEL_NOT_LOADED until it is there (then redeploy); read LICENSE.txt "
    "before downloading it, or run config/serve.dev.yaml for the untrained tiny model"
)


def _release_free_memory() -> None:
    """Give freed heap pages back to the OS (glibc keeps them after a big request otherwise).

    Called from the replicas' periodic `check_health`, so an idle replica shrinks back
    within `health_check_period_s` after a reconstruction; a no-op off glibc.
    """
    trim = _glibc_malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _glibc_malloc_trim() -> Any:
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


# --- stages ---------------------------------------------------------------------------


@serve.deployment(
    name=FRAMES_NAME,
    ray_actor_options={"num_cpus": FRAMES_CPUS},
    max_ongoing_requests=4,
)
class FrameExtractor:
    """Photos and phone videos to RGB uint8 frames (the pipeline's decode stage)."""

    def __init__(self, settings: AppSettings):
        from serve_app.pipeline import Pipeline  # imported in the replica, not in the builder

        self._stages = Pipeline(settings)
        self._metrics = service_metrics()

    def decode_images(self, blobs: list[bytes]) -> FrameBatch:
        start = time.perf_counter()
        frames = self._stages.decode_images(blobs)
        return self._batch(frames, "images", time.perf_counter() - start)

    def sample_video(self, path: str) -> FrameBatch:
        start = time.perf_counter()
        frames = self._stages.decode_video(path)
        return self._batch(frames, "video", time.perf_counter() - start)

    def check_health(self) -> None:
        _release_free_memory()

    def _batch(self, frames: list, source: str, seconds: float) -> FrameBatch:
        self._metrics.record_stage("decode", seconds)
        self._metrics.record_frames(source, len(frames))
        return FrameBatch(frames=list(frames), source=source, timings={"decode": seconds})


CUDA_BREAKAGE = ("CUDA error", "device-side assert", "illegal memory access", "CUBLAS_STATUS", "cuDNN error")


@serve.deployment(
    name=INFERENCE_NAME,
    ray_actor_options={"num_cpus": INFERENCE_CPUS},
    # Two per replica: the runner runs one forward pass at a time (its own lock), and the
    # second request's frames are fetched and preprocessed meanwhile.
    max_ongoing_requests=2,
    health_check_period_s=10,
    health_check_timeout_s=30,
)
class VGGTInference:
    """The VGGT model, loaded once per replica (`serve_app.vggt.runner.InferenceRunner`)."""

    def __init__(self, settings: ModelSettings, torch_threads: int = 0, keep_keys: tuple[str, ...] = ()):
        """torch_threads: 0 leaves torch's default; -1 uses every core this replica may run on.

        keep_keys: the prediction arrays passed on (those the export reads); () passes all.
        """
        self._settings = settings
        self._keep_keys = keep_keys
        self._metrics = service_metrics()
        self._runner = None
        self._error: ModelUnavailableError | None = None
        self._broken: str | None = None
        # Ray sets OMP_NUM_THREADS to the CPU share (1); on CPU the forward pass is the heavy part
        # of a request, so it gets the node's cores, as the in-process pipeline does.
        self._torch_threads = _cpu_count() if torch_threads < 0 else torch_threads
        start = time.perf_counter()
        try:
            from serve_app.vggt.runner import InferenceRunner

            self._runner = InferenceRunner(settings)
        except ModelUnavailableError as exc:
            self._error = exc
            log.error("VGGT model NOT loaded: %s; %s", exc.message, WEIGHTS_HINT)
        else:
            log.info(
                "VGGT model %r loaded on %s in %.1f s",
                settings.preset,
                self._runner.device,
                time.perf_counter() - start,
            )
        self._metrics.set_model_loaded(self._runner is not None)

    def predict(self, batch: FrameBatch) -> PredictionBatch:
        if self._runner is None:
            assert self._error is not None
            raise ModelUnavailableError(self._error.message)
        if self._torch_threads:
            import torch

            # Per thread: with OpenMP the count is a per-thread setting, and Serve runs each call
            # on one of its worker threads, not the thread that ran the constructor.
            if torch.get_num_threads() != self._torch_threads:
                torch.set_num_threads(self._torch_threads)
        start = time.perf_counter()
        try:
            predictions = self._runner.predict(batch.frames)
        except ServiceError:
            raise
        except RuntimeError as exc:
            if any(marker in str(exc) for marker in CUDA_BREAKAGE):
                self._broken = str(exc)
                log.error("VGGT replica is broken, asking Serve to replace it: %s", exc)
            raise
        seconds = time.perf_counter() - start
        self._metrics.record_stage("inference", seconds)
        if self._keep_keys:  # the rest would be copied through the object store for nothing
            predictions = {key: predictions[key] for key in self._keep_keys}
        return PredictionBatch(
            predictions=predictions,
            frame_count=len(batch.frames),
            timings={**batch.timings, "inference": seconds},
        )

    def status(self) -> dict[str, Any]:
        return {
            "loaded": self._runner is not None,
            "preset": self._settings.preset,
            "device": str(self._runner.device) if self._runner is not None else None,
            "torch_threads": self._torch_threads or None,
            "error": self._error.message if self._error is not None else None,
            "broken": self._broken,
        }

    def check_health(self) -> None:
        # Serve calls this every health_check_period_s: refresh the gauge (Ray exports a gauge
        # only for a while after it was last set).
        self._metrics.set_model_loaded(self._runner is not None and self._broken is None)
        _release_free_memory()
        if self._broken is not None:
            raise RuntimeError(f"VGGT replica unusable: {self._broken}")


@serve.deployment(
    name=EXPORTER_NAME,
    ray_actor_options={"num_cpus": EXPORTER_CPUS},
    max_ongoing_requests=4,
)
class GlbExporter:
    """Predictions to a GLB saved as file + row (the pipeline's export and store stages)."""

    def __init__(self, settings: AppSettings):
        from serve_app.pipeline import Pipeline

        self._stages = Pipeline(settings)  # its GlbStore opens the database on first use
        self._metrics = service_metrics()

    def check_health(self) -> None:
        _release_free_memory()

    def export_and_store(self, batch: PredictionBatch, user_id: int, original_name: str) -> StoredReconstruction:
        start = time.perf_counter()
        glb = self._stages.export(batch.predictions).glb
        export_s = time.perf_counter() - start
        self._metrics.record_stage("export", export_s)
        start = time.perf_counter()
        stored = self._stages.save(glb, user_id, original_name)
        store_s = time.perf_counter() - start
        self._metrics.record_stage("store", store_s)
        return StoredReconstruction(
            hashed_name=stored.hashed_name,
            glb=glb,
            frame_count=batch.frame_count,
            timings={**batch.timings, "export": export_s, "store": store_s},
        )


# --- ingress --------------------------------------------------------------------------


@serve.deployment(
    name=INGRESS_NAME,
    num_replicas=1,  # it binds the TCP port
    ray_actor_options={"num_cpus": INGRESS_CPUS},
    max_ongoing_requests=64,  # handle calls only (status, standalone proxies' login/get_glb)
    graceful_shutdown_timeout_s=10,
)
class TCPIngress:
    """Hosts the TCP server of `tcp_proxy` on this replica's event loop; owns users and GET_GLB."""

    async def __init__(self, settings: AppSettings, frames: Any, inference: Any, exporter: Any):
        from serve_app.storage.database import Database
        from serve_app.storage.glb_store import GlbStore
        from serve_app.storage.users import UserStore
        from tcp_proxy.server import start_server

        self._settings = settings
        self._metrics = service_metrics()
        self._inference = inference
        self._db = Database(settings.storage.database_url)
        await asyncio.to_thread(self._db.upgrade)  # an empty or older database is brought up to date
        self._users = UserStore(self._db, settings.auth)
        self._glbs = GlbStore(self._db, settings.storage.storage_root)
        self._model_status: dict[str, Any] | None = None
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT_REQUESTS)
        # A LOGIN verifies a scrypt hash: ~128 MiB and a CPU core for a moment each. Bound how
        # many run at once so a burst of logins cannot blow up this replica's memory.
        self._login_slots = asyncio.Semaphore(LOGIN_CONCURRENCY)
        backend = ServeBackend(frames=frames, inference=inference, exporter=exporter, accounts=self)
        self._server = await start_server(
            settings.proxy,
            backend,
            max_images=settings.frames.max_images,
            on_request=self._on_request,
        )
        log.info("TCP protocol server listening on %s:%d", settings.proxy.host, self._server.port)
        self._status_task = asyncio.get_running_loop().create_task(self._log_model_status())

    async def _log_model_status(self) -> None:
        """Say once whether reconstructions can run (the VGGT replica may still be loading)."""
        try:
            status = await self._inference.status.remote()
        except Exception:
            log.exception("could not ask VGGTInference for its status")
            return
        self._model_status = status
        if status.get("loaded"):
            log.info("VGGT model %r ready on %s", status.get("preset"), status.get("device"))
        else:
            log.error("VGGT model not loaded: %s; %s", status.get("error"), WEIGHTS_HINT)

    def _on_request(self, record: Any) -> None:
        self._recent.append(
            {
                "command": record.command,
                "outcome": record.outcome,
                "seconds": record.seconds,
                "bytes_in": record.bytes_in,
                "bytes_out": record.bytes_out,
                "timings": dict(record.timings),
            }
        )
        self._metrics.record_request(
            record.command,
            record.outcome,
            bytes_in=record.bytes_in,
            bytes_out=record.bytes_out,
            latency_s=record.seconds,
        )
        self._report_load()

    def _report_load(self) -> None:
        server = self._server
        if server is not None:
            self._metrics.set_proxy_load(server.active_connections, server.pending_reconstructions)

    # Accounts, used by the in-replica ServeBackend and through this deployment's handle.

    async def login(self, username: str, password: str, address: str) -> User | None:
        async with self._login_slots:
            info = await asyncio.to_thread(self._users.authenticate, username, password, address)
        return None if info is None else User(id=info.id, username=info.username, is_vip=info.is_vip)

    async def get_glb(self, hash_text: str) -> bytes:
        return await asyncio.to_thread(self._glbs.read, hash_text)

    # Introspection for tests, benchmarks and operators.

    def get_port(self) -> int:
        return self._server.port

    def recent_requests(self) -> list[dict[str, Any]]:
        """The last requests answered (command, outcome, bytes, seconds, per-stage timings)."""
        return list(self._recent)

    async def status(self) -> dict[str, Any]:
        if self._model_status is None or not self._model_status.get("loaded"):
            try:
                self._model_status = await self._inference.status.remote()
            except Exception as exc:  # pragma: no cover - reported, not raised
                self._model_status = {"loaded": False, "error": repr(exc)}
        return {"port": self._server.port, "pid": os.getpid(), "model": self._model_status, **self._server.stats()}

    def check_health(self) -> None:
        _release_free_memory()
        self._report_load()
        listener = getattr(self._server, "_server", None)
        if listener is None or not listener.is_serving():
            raise RuntimeError("the TCP server is not listening")

    async def __del__(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            self._server = None
            await server.close()
        db = getattr(self, "_db", None)
        if db is not None:
            db.dispose()


# --- builder --------------------------------------------------------------------------


def build_app(args: dict[str, Any] | None = None) -> Application:
    """The application for `args` (the YAML's `args`; see `serve_app.config.AppSettings`).

    `args` is the nested dict of `config/serve.yaml`. For `serve run
    serve_app.app:build_app key=value ...` dotted keys are accepted too
    (`model.preset=tiny proxy.port=4568`), their values parsed as YAML scalars.
    """
    settings = AppSettings.from_args(args)
    placement = _inference_placement(settings.model)
    model_settings = dataclasses.replace(settings.model, device=placement["device"])
    inference = VGGTInference.options(ray_actor_options=placement["ray_actor_options"]).bind(
        model_settings, placement["torch_threads"], prediction_keys(settings.export.source)
    )
    frames = FrameExtractor.bind(settings)
    exporter = GlbExporter.bind(settings)
    return TCPIngress.bind(settings, frames, inference, exporter)


def _inference_placement(model: ModelSettings) -> dict[str, Any]:
    """VGGTInference's resources and resolved device (see the module docstring)."""
    gpus, where = _cluster_gpus()
    if model.device == "cpu":
        use_gpu = False
    elif model.device == "cuda":
        use_gpu = True
        if not gpus:
            log.warning(
                "model.device is 'cuda' but %s has no GPU now: VGGTInference stays pending until a GPU "
                "node joins; use device 'auto' to fall back to CPU",
                where,
            )
    else:
        use_gpu = bool(gpus)
        if not use_gpu:
            log.warning(
                "%s has no GPU: VGGTInference runs on CPU (slow: minutes per reconstruction with the "
                "1B model); start the cluster with a GPU for production",
                where,
            )
    if use_gpu:
        log.info("%s has %s GPU(s): VGGTInference asks for num_gpus=1", where, gpus)
        return {
            "device": "cuda",
            "ray_actor_options": {"num_cpus": INFERENCE_CPUS, "num_gpus": 1},
            "torch_threads": 0,
        }
    # On CPU the forward pass is the one heavy computation of a request: let torch use the
    # node's cores (Ray would limit it to the CPU share through OMP_NUM_THREADS).
    return {
        "device": "cpu",
        "ray_actor_options": {"num_cpus": INFERENCE_CPUS, "num_gpus": 0},
        "torch_threads": -1,
    }


def _cluster_gpus() -> tuple[float, str]:
    """GPUs of the Ray cluster when connected, else of this machine; and which one was asked."""
    try:
        import ray

        if ray.is_initialized():
            return float(ray.cluster_resources().get("GPU", 0)), "the Ray cluster"
    except Exception:  # pragma: no cover - fall back below
        log.debug("could not read the cluster's resources", exc_info=True)
    try:
        import torch

        return float(torch.cuda.device_count()), "this machine (Ray not initialised)"
    except Exception:  # pragma: no cover
        return 0.0, "this machine"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
