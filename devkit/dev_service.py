"""The dev service (config/serve.dev.yaml: the tiny model on CPU) run by `serve run` for a check or benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devkit.client import DevClient
from devkit.ports import free_port
from devkit.processes import alive, descendants, kill
from tcp_proxy.client import ProtocolViolation, ServerError

ROOT = Path(__file__).resolve().parents[1]
READY_S = 180.0
STOP_S = 60.0


def answers_login(host: str, port: int) -> bool:
    """Whether a LOGIN on `port` gets a reply of any kind."""
    try:
        with DevClient(host, port, timeout=10.0, source="127.0.0.1") as client:
            client.login("", "")
    except ServerError:
        return True
    except (OSError, ValueError, ProtocolViolation):
        return False
    return True


class DevService:
    """`serve run` of config/serve.dev.yaml in a temporary directory, on free ports."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bench_load_")
        self.dir = Path(self.tmp.name)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.started: set[int] = set()  # every process seen under `serve run`

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.dir / 'vggt_app.db'}"

    def write_config(self) -> Path:
        import yaml

        config = yaml.safe_load((ROOT / "config" / "serve.dev.yaml").read_text())
        config["http_options"]["port"] = free_port((self.port,))
        config["applications"][0]["args"]["proxy"]["port"] = self.port
        path = self.dir / "serve.dev.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> None:
        serve = Path(sys.executable).with_name("serve")
        config = self.write_config()
        log = open(self.dir / "serve.log", "wb")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.process = subprocess.Popen(
            [str(serve), "run", "--address", "local", str(config)],  # "local": a cluster of its own
            cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        log.close()

    def wait_ready(self, host: str, timeout_s: float = READY_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"serve run exited ({self.process.returncode}):\n{self.log_tail()}")
            self.started |= descendants(self.process.pid)
            if answers_login(host, self.port):
                return
            time.sleep(2)
        raise RuntimeError(f"the service did not answer on port {self.port} within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = (self.dir / "serve.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> list[int]:
        """SIGINT, kill after STOP_S; then kill what is left of its processes. The pids killed at the end."""
        left: list[int] = []
        if self.process is not None:
            self.started |= descendants(self.process.pid)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            time.sleep(2)
            left = [pid for pid in sorted(self.started) if alive(pid)]
            for pid in left:
                kill(pid)
        self.tmp.cleanup()
        return left


def run_with_dev_service(work, service: DevService | None = None):
    """Start the dev service (`service`, else a plain one), wait until it answers, call `work(service)`,
    stop it and whatever it started.

    Prints how long it took to answer, and the processes left behind that had to be killed.
    """
    service = service or DevService()
    try:
        service.start()
        started = time.monotonic()
        service.wait_ready("127.0.0.1")
        print(f"dev service on port {service.port} answered after {time.monotonic() - started:.0f} s", flush=True)
        return work(service)
    finally:
        left = service.stop()
        if left:
            print(f"killed {len(left)} process(es) left by serve run: {left}", file=sys.stderr)
