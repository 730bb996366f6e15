"""`logging_config: {encoding: JSON}` end to end: the TCP ingress replica's log holds each request's access
line as one JSON object, with Serve's replica fields beside our message."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from service_users import PASSWORD, create_users, free_port
from wire_client import Conn

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

APP = "vggt-it-json-logs"


@pytest.fixture(scope="module")
def json_logging_app(ray_cluster, tmp_path_factory):
    """(TCP port, the folder of Serve's log files) of the app deployed with JSON logs."""
    import ray
    from ray import serve

    from serve_app.app import build_app

    tmp = tmp_path_factory.mktemp("json_logs")
    (tmp / "spool").mkdir()
    database_url = f"sqlite:///{tmp / 'service.db'}"
    create_users(database_url)
    port = free_port()
    args = {
        "model": {"preset": "tiny", "device": "cpu"},
        "storage": {"database_url": database_url, "storage_root": str(tmp / "store")},
        "proxy": {"host": "127.0.0.1", "port": port, "spool_dir": str(tmp / "spool")},
    }
    # the application's `logging_config` of a Serve config file
    serve.run(build_app(args), name=APP, route_prefix=None, logging_config={"encoding": "JSON", "log_level": "INFO"})
    serve.get_deployment_handle("TCPIngress", APP).get_port.remote().result(timeout_s=300)
    logs = Path(ray._private.worker._global_node.get_logs_dir_path()) / "serve"
    try:
        yield port, logs
    finally:
        serve.delete(APP)


def json_lines(logs: Path, deployment: str) -> list[dict]:
    """Every line of the app's replica logs of `deployment`, each parsed as JSON (a line that is not fails)."""
    lines = []
    for path in sorted(logs.glob(f"replica_{APP}_{deployment}_*.log")):
        for text in path.read_text(errors="replace").splitlines():
            if text.strip():
                lines.append(json.loads(text))
    return lines


def test_the_access_line_of_a_request_is_a_json_object_in_the_replica_log(json_logging_app):
    port, logs = json_logging_app
    with Conn(port) as c:
        assert c.login("alice", PASSWORD)[0] is True
    deadline = time.monotonic() + 60
    while True:  # the replica writes the line after the reply went out
        access = [line for line in json_lines(logs, "TCPIngress") if line["message"].startswith("request peer=")]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert access, f"no access line in {sorted(p.name for p in logs.glob(f'replica_{APP}_TCPIngress_*'))}"
    line = access[-1]
    assert "command=LOGIN" in line["message"] and "outcome=OK" in line["message"] and "user=alice" in line["message"]
    assert line["levelname"] == "INFO"
    assert line["deployment"] == f"{APP}_TCPIngress" and line["replica"], line  # Serve's fields of the replica
    listening = [entry for entry in json_lines(logs, "TCPIngress") if "TCP protocol server listening" in entry["message"]]
    assert listening, "the ingress's start-up line is JSON too"
