"""Send the service's own loggers through Serve's replica logging.

Serve configures only its `ray.serve` logger inside a replica (handlers for
the replica's log file and for `serve run`'s output, with the application's
`logging_config`: encoding TEXT or JSON, level, logs_dir). The service logs
under `tcp_proxy` (one access line per request, protocol errors) and
`serve_app.*` (refused logins, stage failures); without this those records
would go nowhere. Each deployment calls `use_serve_logging()` when its
replica starts.
"""

from __future__ import annotations

import logging

SERVICE_LOGGERS = ("tcp_proxy", "serve_app")
SERVE_LOGGER = "ray.serve"


def use_serve_logging(names: tuple[str, ...] = SERVICE_LOGGERS) -> None:
    """Give each named logger the handlers and level of Serve's replica logger."""
    serve_logger = logging.getLogger(SERVE_LOGGER)
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = list(serve_logger.handlers)
        logger.setLevel(serve_logger.level)
        logger.propagate = False  # once, through Serve's handlers
