"""What the TCP server answered: the last requests, kept for operators, and the request metrics."""

from __future__ import annotations

import collections
from typing import Any

from serve_app.metrics import ServiceMetrics
from tcp_proxy.server import RequestRecord

RECENT_REQUESTS = 100  # kept for `recent()`


class RequestHistory:
    """Feeds each answered request to the metrics and keeps the last RECENT_REQUESTS."""

    def __init__(self, metrics: ServiceMetrics, size: int = RECENT_REQUESTS) -> None:
        self._metrics = metrics
        self._recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def record(self, record: RequestRecord) -> None:
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

    def recent(self) -> list[dict[str, Any]]:
        """The last requests answered (command, outcome, bytes, seconds, per-stage timings), oldest first."""
        return list(self._recent)
