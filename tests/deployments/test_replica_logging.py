"""The service's loggers write through Serve's replica logger as it is at each record (no Ray: plain loggers)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from serve_app.deployments.replica_logging import use_serve_logging

SERVE = "test_replica_logging.serve"
SERVICE = ("test_replica_logging.tcp_proxy",)


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"levelname": record.levelname, "message": record.getMessage()})


def stream_handler(formatter: logging.Formatter) -> tuple[logging.Handler, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    return handler, out


@pytest.fixture
def serve_logger():
    logger = logging.getLogger(SERVE)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers = []
    for name in SERVICE:
        logging.getLogger(name).handlers = []


def test_service_lines_use_the_handlers_serve_has_now(serve_logger):
    text, text_out = stream_handler(logging.Formatter("TEXT %(message)s"))
    serve_logger.handlers = [text]
    use_serve_logging(SERVICE, SERVE)
    service = logging.getLogger(SERVICE[0])
    service.info("request peer=127.0.0.1 command=LOGIN outcome=ok")
    assert text_out.getvalue() == "TEXT request peer=127.0.0.1 command=LOGIN outcome=ok\n"

    as_json, json_out = stream_handler(JsonLines())  # a redeploy with `encoding: JSON` replaces Serve's handlers
    serve_logger.handlers = [as_json]
    serve_logger.setLevel(logging.WARNING)
    service.info("dropped: below the new level")
    service.warning("request peer=127.0.0.1 command=LIST outcome=refused")
    (line,) = json_out.getvalue().splitlines()
    assert json.loads(line) == {"levelname": "WARNING", "message": "request peer=127.0.0.1 command=LIST outcome=refused"}
    assert text_out.getvalue().count("\n") == 1  # the old handler got nothing more
    assert service.propagate is False
