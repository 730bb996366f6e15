"""`TCPIngress`: hosts the TCP server of `tcp_proxy` on port 4567, in front of the stage deployments.

It runs the protocol server on its replica's event loop with a
`ServeBackend`: LOGIN and GET_GLB through `Accounts` in this replica,
reconstructions through the stage deployments' handles (a
`HandleStageRunner`), in the order of `serve_app.stages.STAGES`. It also
answers the HTTP API's calls (`web_call`, from `ShareViewer`) with a
`WebAccess` over the same `Accounts` and a `WebJobRunner` over the same
server (admission, spool folder) and backend (docs/HTTP_API.md). Its
listener binds with SO_REUSEPORT: during a redeploy the new replica listens
on the port while the old one drains.
The builder sets its `graceful_shutdown_timeout_s` from `proxy.handover_s`
and `proxy.drain_timeout_s`.

Replicas: SO_REUSEPORT also lets several replicas on one node listen on the
port at once (the kernel spreads new connections over them), and sessions
and the login throttle are database rows, so any replica answers any client.
Across nodes, one per node (`max_replicas_per_node: 1`) behind a TCP load
balancer (config/serve.cluster.yaml). The connection, pending-reconstruction
and per-user limits and the wait estimate are each replica's own.

Autoscaling: it follows the RUNNING VGGTInference replicas in Serve's view
(`replica_count.follow_running_replicas`, every few seconds, off the event
loop) and hands the count to its admission, whose wait estimate divides by
it: when the autoscaler adds an inference replica, more requests are admitted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from typing import Any

from ray import serve
from ray.serve.config import RequestRouterConfig
from ray.serve.handle import DeploymentHandle
from ray.serve.schema import ApplicationStatus

from serve_app.accounts import Accounts
from serve_app.config import AppSettings
from serve_app.http.web_access import WebAccess
from serve_app.metrics import service_metrics
from serve_app.request_history import RequestHistory
from serve_app.serve_backend import ServeBackend
from serve_app.stages import STAGES, ExportStage, InferenceStage
from serve_app.web_jobs import JobLimits, WebJobRunner
from tcp_proxy.server import RequestRecord, start_server

from .owner_router import OwnerRouter
from .replica_count import follow_running_replicas
from .replica_logging import use_serve_logging
from .stage_deployment import release_free_memory, tune_malloc
from .stage_runner import HandleStageRunner, unwrap_service_error
from .vggt_inference import WEIGHTS_HINT, VGGTInference

OWNER_ROUTER = f"{OwnerRouter.__module__}.{OwnerRouter.__qualname__}"
UPLOAD_IDLE_READS = 2  # an upload is dropped after this many read timeouts without a piece (the HTTP ingress has one)
STATUS_TIMEOUT_S = 5.0  # asking the controller for the application's status
MODEL_RECHECK_S = 10.0  # while the model is reported not loaded, VGGTInference is asked again this often

log = logging.getLogger("ray.serve")  # Serve's logger: shows in `serve run` output and the replica logs


@serve.deployment(
    name="TCPIngress",
    num_replicas=1,  # the default; more share the port (see the module docstring)
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=64,  # handle calls only (status, recent_requests, get_port)
    health_check_period_s=1,  # a dead listener is noticed (and replaced) within a second or two
    health_check_timeout_s=10,
    # a browser upload's pieces reach the replica receiving it (its `route_to`): owner_router.py
    request_router_config=RequestRouterConfig(request_router_class=OWNER_ROUTER),
)
class TCPIngress:
    async def __init__(self, settings: AppSettings, *stages: DeploymentHandle) -> None:
        """stages: one handle per stage deployment, in the order of STAGES."""
        use_serve_logging()
        tune_malloc()
        self._metrics = service_metrics()
        self._history = RequestHistory(self._metrics)
        self._model: DeploymentHandle = dict(zip(STAGES, stages, strict=True))[InferenceStage]
        self._exporter: DeploymentHandle = dict(zip(STAGES, stages, strict=True))[ExportStage]
        self._model_status: dict[str, Any] | None = None
        self._accounts = await Accounts.open(settings)
        self._stage_runner = HandleStageRunner(stages)
        self._backend = ServeBackend(self._accounts, self._stage_runner, settings, self._metrics)
        self._server = await start_server(
            settings.proxy,
            self._backend,
            max_images=settings.frames.max_images,
            on_request=self._on_request,
            sessions=self._accounts,  # in the database: kept through restarts, shared by replicas
            model_loaded=self._model_may_run,
        )
        log.info("TCP protocol server listening on %s:%d", settings.proxy.host, self._server.port)
        self._status_task = asyncio.get_running_loop().create_task(self._log_model_status())
        self._replicas_task = asyncio.get_running_loop().create_task(
            follow_running_replicas(
                serve.get_replica_context().app_name, VGGTInference.__name__, self._server.admission.set_replicas
            )
        )
        self._web_jobs = self._web_job_runner(settings)
        self._web = WebAccess(self._accounts, self._web_jobs)  # the HTTP API's calls (web_call)

    def _web_job_runner(self, settings: AppSettings) -> WebJobRunner:
        """Browser jobs on this replica's TCP server: its admission, spool folder, backend and limits."""
        server, proxy = self._server, settings.proxy
        return WebJobRunner(
            self._accounts.web_jobs,
            self._backend,
            server.admission,
            JobLimits(
                settings.frames.max_images,
                proxy.max_payload_bytes,
                proxy.require_vip_for_video,
                upload_idle_s=UPLOAD_IDLE_READS * proxy.read_timeout_s,
            ),
            spool_dir=lambda: server.spool_dir,
            reexport=self._reexport,
            result_check=self._accounts.predictions_stored,
            export_defaults=settings.export,
            capacity=lambda: server.admission.estimate.replicas,
            model_loaded=self._model_may_run,
            owner=serve.get_replica_context().replica_id.unique_id,
        )

    async def _reexport(self, user_id: int, hashed_name: str, options: dict[str, Any]) -> Any:
        try:
            return await self._exporter.reexport.remote(user_id, hashed_name, options)
        except Exception as exc:  # a replica's ServiceError comes wrapped by Ray
            raise unwrap_service_error(exc) from None

    async def web_call(self, method: str, *args: Any, route_to: str = "") -> dict[str, Any]:
        """One call of the HTTP API (`serve_app.http.web_access.WebAccess`), for the HTTP ingress; `route_to`
        names the replica that must answer it (read by `OwnerRouter`, not here)."""
        return await self._web.call(method, *args)

    def _model_may_run(self) -> bool:
        """False once VGGTInference has said its model is not loaded: uploads over TCP and from the browser
        are then refused ERROR_MODEL_NOT_LOADED at their header; true while not known yet."""
        return self._model_status is None or bool(self._model_status.get("loaded"))

    async def _log_model_status(self) -> None:
        """Say once whether reconstructions can run (the VGGT replica may still be loading); while the
        model is not loaded, ask again every MODEL_RECHECK_S, so that a replica which loads it later
        (replaced, added by the autoscaler) lifts the refusal at the header."""
        while True:
            try:
                status = await self._model.status.remote()
            except Exception:
                log.exception("could not ask VGGTInference for its status")
                return
            known, self._model_status = self._model_status, status
            if status.get("loaded"):
                log.info("VGGT model %r ready on %s", status.get("preset"), status.get("device"))
                return
            if known is None:
                log.error("VGGT model not loaded: %s; %s", status.get("error"), WEIGHTS_HINT)
            await asyncio.sleep(MODEL_RECHECK_S)

    def _on_request(self, record: RequestRecord) -> None:
        self._history.record(record)
        self._report_load()

    def _report_load(self) -> None:
        server = self._server
        if server is not None:
            self._metrics.set_proxy_load(
                server.active_connections, server.pending_reconstructions, server.admission.estimated_wait_s
            )
            free_bytes = spool_free_bytes(server.spool_dir)
            if free_bytes is not None:
                self._metrics.set_spool_free_bytes(free_bytes)

    # Introspection for tests, benchmarks and operators.

    def get_port(self) -> int:
        return self._server.port

    def listening(self) -> dict[str, Any]:
        """The TCP listener's state, for the readiness check (`serve_app.http.health`)."""
        server = self._server
        return {"listening": server is not None and server.serving, "port": None if server is None else server.port}

    async def model_status(self) -> dict[str, Any]:
        """VGGTInference's status as it is now (not the cached one of `status`), for the readiness check."""
        return await self._model.status.remote()

    def recent_requests(self) -> list[dict[str, Any]]:
        return self._history.recent()

    async def status(self) -> dict[str, Any]:
        model = self._model_status
        if model is None or not model.get("loaded"):
            try:
                model = self._model_status = await self._model.status.remote()
            except Exception as exc:  # pragma: no cover - reported, not raised, nor taken for the model's state
                model = {"loaded": False, "error": repr(exc)}
        return {
            "port": self._server.port,
            "pid": os.getpid(),
            "model": model,
            "retries": self._backend.retries,
            "in_stages": self._stage_runner.in_flight,  # runs inside the stage deployments now
            "inference_replicas": self._server.admission.estimate.replicas,  # as the wait estimate counts them
            **self._server.stats(),
        }

    def check_health(self) -> None:
        release_free_memory()
        self._report_load()
        if not self._server.serving:
            raise RuntimeError("the TCP server is not listening")

    async def __del__(self) -> None:
        """Serve's graceful shutdown (a redeploy, scaling down): hand the port to the successor,
        let requests under way finish, then close (`ProxyServer.drain`)."""
        server = getattr(self, "_server", None)
        if server is not None:
            self._server = None
            proxy = server.settings
            handover_s = proxy.handover_s if await _successor_expected() else 0.0
            await server.drain(handover_s=handover_s, timeout_s=proxy.drain_timeout_s)
        web_jobs = getattr(self, "_web_jobs", None)
        if web_jobs is not None:  # browser jobs still running after the drain end failed
            await web_jobs.close()
        accounts = getattr(self, "_accounts", None)
        if accounts is not None:
            accounts.close()


def spool_free_bytes(folder: os.PathLike[str] | str | None) -> int | None:
    """Free bytes on the disk of the upload spool folder; None before it exists or when it cannot be read."""
    if folder is None:
        return None
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


async def _successor_expected() -> bool:
    """Whether Serve replaces this replica (a redeploy, a failed health check) rather than removing
    the application: only then is a new listener worth waiting for."""

    def application_status() -> ApplicationStatus | None:
        app = serve.get_replica_context().app_name
        status = serve.status().applications.get(app)
        return None if status is None else status.status

    try:
        status = await asyncio.wait_for(asyncio.to_thread(application_status), STATUS_TIMEOUT_S)
    except Exception:  # the controller is gone or slow: Serve is shutting down
        return False
    return status is not None and status != ApplicationStatus.DELETING
