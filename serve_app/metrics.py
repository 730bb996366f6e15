"""Custom Ray Serve metrics of the service.

Names follow Prometheus conventions (base units in the name: `_seconds`,
`_bytes`; Ray adds the `ray_` prefix, and the `_total` suffix to counters,
so `vggt_received_bytes` is scraped as `ray_vggt_received_bytes_total`). They
are exported with Ray's other metrics and show up in the Ray dashboard's
metrics view and in Grafana next to Serve's own `ray_serve_*` series. Serve
adds the `deployment`, `replica` and `application` tags itself.

| metric | kind | tags | recorded by |
| --- | --- | --- | --- |
| `vggt_requests` | counter | command, outcome (`OK`, `LOGIN_FAILED`, `DISCONNECTED` or the `ERROR_*` code sent) | ingress, one per request |
| `vggt_request_duration_seconds` | histogram | command | ingress: header received to reply sent (upload included) |
| `vggt_stage_duration_seconds` | histogram | stage (the `name` of each of `STAGES`: `decode`, `inference`, `export`) | `run_stage` |
| `vggt_frames_per_request` | histogram | source (`images`, `video`) | the decode stage's replica (`run_stage`) |
| `vggt_received_bytes` / `vggt_sent_bytes` | counter | command | ingress (request frames / replies) |
| `vggt_result_cache_lookups` | counter | outcome (`hit`, `miss`) | ingress: an upload found (or not) among the user's stored results |
| `vggt_model_loaded` | gauge | | VGGTInference: 1 when the model is loaded, 0 when it could not be |
| `vggt_open_connections` / `vggt_pending_reconstructions` | gauge | | ingress (TCP server), refreshed per request and every 10 s |
| `vggt_estimated_wait_seconds` | gauge | | ingress: how long a reconstruction admitted now would wait (admission refuses over `proxy.max_wait_s`) |
| `vggt_reconstruction_retries` | counter | | ingress: runs repeated because a stage replica died |
| `vggt_spool_free_bytes` | gauge | | ingress: free bytes on the disk of its upload spool folder, refreshed with the load gauges |
| `vggt_storage_errors` | counter | operation (`save`, `read`) | whoever fails to store or read a GLB (`record_storage_error`) |

Metrics are created lazily, in the process that records them: Serve tags a
metric with the replica it was created in, so a module-level instance made
at import time (for example in the controller while the app is built) would
carry the wrong tags. `service_metrics()` returns the process's one instance.
Recording never raises: a metrics problem must not fail a request.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

log = logging.getLogger(__name__)

LATENCY_BOUNDARIES_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600]
FRAME_BOUNDARIES = [1, 2, 4, 8, 16, 24, 32, 48, 64, 100, 150, 200]


class ServiceMetrics:
    """The service's metric objects for one process."""

    def __init__(self) -> None:
        from ray.serve import metrics

        self.requests = metrics.Counter(
            "vggt_requests",
            description="Requests over the TCP protocol, by command and outcome (ok or the ERROR_ code).",
            tag_keys=("command", "outcome"),
        )
        self.request_latency = metrics.Histogram(
            "vggt_request_duration_seconds",
            description="Time from a request's header to its reply sent (upload included), by command.",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=("command",),
        )
        self.stage_latency = metrics.Histogram(
            "vggt_stage_duration_seconds",
            description="Time spent in one pipeline stage: decode, inference or export (export includes storing).",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=("stage",),
        )
        self.frames = metrics.Histogram(
            "vggt_frames_per_request",
            description="Frames given to VGGT per reconstruction (decoded images or sampled video frames).",
            boundaries=FRAME_BOUNDARIES,
            tag_keys=("source",),
        )
        self.bytes_in = metrics.Counter(
            "vggt_received_bytes",
            description="Request payload bytes received, by command.",
            tag_keys=("command",),
        )
        self.bytes_out = metrics.Counter(
            "vggt_sent_bytes",
            description="Reply bytes sent, by command.",
            tag_keys=("command",),
        )
        self.open_connections = metrics.Gauge(
            "vggt_open_connections",
            description="TCP connections the server holds open.",
        )
        self.pending_reconstructions = metrics.Gauge(
            "vggt_pending_reconstructions",
            description="IMAGE/VIDEO requests queued or running (over proxy.max_pending_reconstructions: ERROR_BUSY).",
        )
        self.cache_lookups = metrics.Counter(
            "vggt_result_cache_lookups",
            description="Uploads looked up among the user's stored results: hit (answered from storage) or miss.",
            tag_keys=("outcome",),
        )
        self.estimated_wait = metrics.Gauge(
            "vggt_estimated_wait_seconds",
            description="Estimated wait of a reconstruction admitted now (over proxy.max_wait_s: ERROR_BUSY).",
        )
        self.retries = metrics.Counter(
            "vggt_reconstruction_retries",
            description="Reconstructions run again because a stage replica died during the previous run.",
        )
        self.spool_free_bytes = metrics.Gauge(
            "vggt_spool_free_bytes",
            description="Free bytes on the disk holding the ingress replica's upload spool folder.",
        )
        self.storage_errors = metrics.Counter(
            "vggt_storage_errors",
            description="GLB store failures by operation: save (file or row) or read (GET_GLB, share page).",
            tag_keys=("operation",),
        )
        self.model_loaded = metrics.Gauge(
            "vggt_model_loaded",
            description="1 when the VGGT replica has its model loaded, 0 when it cannot reconstruct.",
        )

    # Every recorder swallows errors: metrics must never fail a request.

    def record_request(
        self,
        command: str,
        outcome: str,
        *,
        bytes_in: int = 0,
        bytes_out: int = 0,
        latency_s: Optional[float] = None,
    ) -> None:
        try:
            command = command or "unknown"
            self.requests.inc(1, tags={"command": command, "outcome": outcome or "unknown"})
            if bytes_in:
                self.bytes_in.inc(bytes_in, tags={"command": command})
            if bytes_out:
                self.bytes_out.inc(bytes_out, tags={"command": command})
            if latency_s is not None:
                self.request_latency.observe(latency_s, tags={"command": command})
        except Exception:  # pragma: no cover - defensive
            log.debug("recording request metrics failed", exc_info=True)

    def record_stage(self, stage: str, seconds: float) -> None:
        try:
            self.stage_latency.observe(seconds, tags={"stage": stage})
        except Exception:  # pragma: no cover - defensive
            log.debug("recording stage metric failed", exc_info=True)

    def record_frames(self, source: str, count: int) -> None:
        try:
            self.frames.observe(count, tags={"source": source})
        except Exception:  # pragma: no cover - defensive
            log.debug("recording frame metric failed", exc_info=True)

    def set_proxy_load(self, open_connections: int, pending_reconstructions: int, estimated_wait_s: float) -> None:
        try:
            self.open_connections.set(open_connections)
            self.pending_reconstructions.set(pending_reconstructions)
            self.estimated_wait.set(estimated_wait_s)
        except Exception:  # pragma: no cover - defensive
            log.debug("recording proxy gauges failed", exc_info=True)

    def record_cache_lookup(self, hit: bool) -> None:
        try:
            self.cache_lookups.inc(1, tags={"outcome": "hit" if hit else "miss"})
        except Exception:  # pragma: no cover - defensive
            log.debug("recording cache metric failed", exc_info=True)

    def record_retry(self) -> None:
        try:
            self.retries.inc(1)
        except Exception:  # pragma: no cover - defensive
            log.debug("recording retry metric failed", exc_info=True)

    def set_spool_free_bytes(self, free_bytes: int) -> None:
        try:
            self.spool_free_bytes.set(free_bytes)
        except Exception:  # pragma: no cover - defensive
            log.debug("recording spool gauge failed", exc_info=True)

    def record_storage_error(self, operation: str) -> None:
        try:
            self.storage_errors.inc(1, tags={"operation": operation})
        except Exception:  # pragma: no cover - defensive
            log.debug("recording storage metric failed", exc_info=True)

    def set_model_loaded(self, loaded: bool) -> None:
        try:
            self.model_loaded.set(1 if loaded else 0)
        except Exception:  # pragma: no cover - defensive
            log.debug("recording model gauge failed", exc_info=True)


_lock = threading.Lock()
_instance: Optional[ServiceMetrics] = None


def service_metrics() -> ServiceMetrics:
    """The process's metrics, created on first use (inside the replica)."""
    global _instance
    with _lock:
        if _instance is None:
            _instance = ServiceMetrics()
        return _instance
