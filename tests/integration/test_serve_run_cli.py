"""`serve run config/serve.dev.yaml` as an operator runs it, driven over TCP.

The test follows the setup guide in a fresh working directory: it creates a
user with `scripts/create_user.py demo 123456 true`, then runs `serve run
--address local <copy of config/serve.dev.yaml>` there with three values changed
(free TCP and HTTP ports, and the upload spool folder inside the test's own folder,
so a stop that has to fall back to SIGKILL leaves nothing in the machine's temp dir; nothing else), in its own process group, on its own fresh
local Ray cluster (dashboard included, as on a real machine), and logs in as
demo, then opens the result's share link over HTTP. It runs before the session fixture's cluster exists (see
conftest.pytest_collection_modifyitems).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from service_users import free_port
from wire_client import Conn

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 300


def _wait_for_port(port: int, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve run exited with {proc.returncode}:\n{log_path.read_text()[-5000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"port {port} not open after {START_TIMEOUT_S} s:\n{log_path.read_text()[-5000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)  # serve run: serve.shutdown(), then Ray stops with it
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def test_serve_run_dev_config(tmp_path, jpegs):
    serve_bin = Path(sys.executable).with_name("serve")
    if not serve_bin.exists():
        pytest.skip("the `serve` CLI is not installed next to this Python")
    config = yaml.safe_load((REPO / "config" / "serve.dev.yaml").read_text())
    port = free_port()
    http_port = free_port(taken=(port,))
    config["applications"][0]["args"]["proxy"]["port"] = port
    config["http_options"]["port"] = http_port
    (tmp_path / "spool").mkdir()
    config["applications"][0]["args"]["proxy"]["spool_dir"] = str(tmp_path / "spool")
    config_path = tmp_path / "serve.dev.yaml"
    config_path.write_text(yaml.safe_dump(config))
    created = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "create_user.py"), "demo", "123456", "true"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    log_path = tmp_path / "serve_run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(serve_bin), "run", "--address", "local", str(config_path)],
            cwd=tmp_path,  # the operator's working directory: relative paths of the config resolve here
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = time.monotonic()
        _wait_for_port(port, proc, log_path)
        print(f"serve run opened port {port} after {time.monotonic() - started:.1f} s")
        with Conn(port) as c:
            assert c.login("demo", "123456")[:2] == [True, True]
            reply = c.images(jpegs)
            assert reply.error is None, reply.data[:100]
            assert len(reply.name) == 68 and reply.name.endswith(".glb")
            assert c.get_glb(reply.name) == reply.data
        assert list((tmp_path / "out").rglob(reply.name))
        share = f"http://127.0.0.1:{http_port}/g/{reply.name[:-4]}"
        with urllib.request.urlopen(share + ".glb", timeout=60) as response:
            assert response.read() == reply.data
        with urllib.request.urlopen(share, timeout=60) as response:
            assert b"three/addons/" in response.read()
    finally:
        _stop(proc)
    output = log_path.read_text(errors="replace")
    assert "TCP protocol server listening" in output
