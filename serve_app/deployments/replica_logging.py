"""Send the service's own loggers through Serve's replica logging.

Serve configures only its `ray.serve` logger inside a replica (handlers for
the replica's log file and for `serve run`'s output, with the application's
`logging_config`: encoding TEXT or JSON, level, logs_dir). The service logs
under `tcp_proxy` (one access line per request, protocol errors) and
`serve_app.*` (refused logins, stage failures); without this those records
would go nowhere. Each deployment calls `use_serve_logging()` when its
replica starts: the service's loggers then hand every record to Serve's
logger as it is *now*, so a `logging_config` changed by a redeploy (Serve
replaces its handlers in the running replica: another encoding, level or
folder) applies to the service's lines too. With `encoding: JSON` each line
of the replica log is one JSON object (`message`, `levelname`, the replica's
and request's ids, ...).
"""

from __future__ import annotations

import logging

SERVICE_LOGGERS = ("tcp_proxy", "serve_app")
SERVE_LOGGER = "ray.serve"


class ToServeLogger(logging.Handler):
    """Hands each record to Serve's logger (its current handlers, filters and level)."""

    def __init__(self, serve_logger: str = SERVE_LOGGER) -> None:
        super().__init__()
        self.serve_logger = serve_logger

    def emit(self, record: logging.LogRecord) -> None:
        target = logging.getLogger(self.serve_logger)
        if record.levelno >= target.getEffectiveLevel():
            target.handle(record)


def use_serve_logging(names: tuple[str, ...] = SERVICE_LOGGERS, serve_logger_name: str = SERVE_LOGGER) -> None:
    """Send each named logger's records through Serve's replica logger, once (no propagation)."""
    serve_logger = logging.getLogger(serve_logger_name)
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = [ToServeLogger(serve_logger_name)]
        # records below Serve's level at start are not even made; a later, stricter level still applies
        logger.setLevel(serve_logger.level)
        logger.propagate = False
