"""Two Ray nodes on one machine, as two machines would be: node B in a mount namespace with a /tmp of its own.

Node A is the head (custom resource `node_a`), node B joins it (`node_b`); both
use token authentication with a token file of their own. `stop()` ends both
nodes and every process left naming their GCS address, never another cluster.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from devkit.ports import free_port
from devkit.processes import kill, pids_naming

BIN = Path(sys.executable).parent  # ray and serve of this venv
REPO = Path(__file__).resolve().parents[1]
APP = "vggt"
NODE_UP_S = 120
STOP_S = 30
# Runs the command after it in a new mount namespace whose /tmp is an empty tmpfs (root only). A
# checkout that itself lives under /tmp (a CI clone) stays visible there: it is held by a bind
# mount while the tmpfs goes on, then bound back to its own path.
_PRIVATE_TMP_SCRIPT = """
repo="$1"; shift
hold=""
case "$repo" in /tmp/*) hold=$(mktemp -d /var/tmp/vggt-repo-XXXXXX) && mount --bind "$repo" "$hold" || exit 70;; esac
mount -t tmpfs tmpfs /tmp || exit 71
if [ -n "$hold" ]; then
    mkdir -p "$repo" && mount --bind "$hold" "$repo" && umount "$hold" && rmdir "$hold" || exit 72
fi
exec "$@"
"""
PRIVATE_TMP = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _PRIVATE_TMP_SCRIPT, "sh", str(REPO)]


class CheckFailed(Exception):
    """A step of the check went wrong; the message says which and why."""


def log(message: str) -> None:
    print(f"[multinode {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_until(what: str, timeout_s: float, probe, interval_s: float = 1.0):
    """Call `probe` until it returns a truthy value; CheckFailed after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
            if value:
                return value
        except CheckFailed:
            raise
        except Exception as exc:  # not up yet
            last_error = exc
        time.sleep(interval_s)
    raise CheckFailed(f"{what}: not within {timeout_s:.0f} s (last error: {last_error!r})")


class Node:
    """One `ray start --block` process, in a process group of its own so it can be stopped alone."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise CheckFailed(f"node {self.name} exited ({self.process.returncode}); its log:\n{self.tail()}")

    def stop(self) -> None:
        """SIGTERM lets `ray start --block` stop its raylet and the rest; the group kill catches stragglers."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                log(f"node {self.name} did not stop within {STOP_S} s: killing its process group")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class TwoNodeCluster:
    def __init__(self, work: Path):
        self.work = work
        ports: list[int] = []
        for _ in range(12):  # GCS, dashboard, HTTP, TCP, and four agent ports per node
            ports.append(free_port(tuple(ports)))
        self.gcs_port, self.dashboard_port, self.http_port, self.tcp_port = ports[:4]
        self.agent_ports = {"node_a": ports[4:8], "node_b": ports[8:12]}
        self.dashboard = f"http://127.0.0.1:{self.dashboard_port}"
        token_file = work / "auth_token"
        token_file.write_text(secrets.token_hex(32))
        token_file.chmod(0o600)
        # Every process of the check (nodes, `serve deploy`, this driver's state queries) uses
        # this token; the caller's RAY_ADDRESS and token must not point them at another cluster.
        self.env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN")}
        self.env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token_file))
        # On SIGTERM a node first waits (30 s by default) for its work to move elsewhere: not here.
        self.env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
        self.nodes: list[Node] = []

    def _agent_options(self, node: str) -> list[str]:
        listen, grpc, metrics, runtime_env = self.agent_ports[node]
        # Fixed by default (e.g. the dashboard agent's 52365): two nodes on one address would collide.
        return [
            f"--dashboard-agent-listen-port={listen}",
            f"--dashboard-agent-grpc-port={grpc}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime_env}",
        ]

    def start(self) -> None:
        common = ["--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
        head = [
            str(BIN / "ray"), "start", "--head", *common,
            f"--port={self.gcs_port}",
            "--num-cpus=1",
            '--resources={"node_a": 1}',
            f"--temp-dir={self.work / 'ray-a'}",
            "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            f"--ray-client-server-port={free_port((self.gcs_port,))}",
            *self._agent_options("node_a"),
        ]  # fmt: skip
        self.nodes.append(Node("A", head, self.env, self.work / "node-a.log"))
        head_up = lambda: self._listening(self.gcs_port) or self.nodes[0].check_alive()  # noqa: E731
        wait_until("node A's GCS port", NODE_UP_S, head_up)
        # Node B: a private /tmp, and its temp dir there, explicitly: unset, a joining node may take the
        # head's temp dir, and then both nodes' session files would sit in one folder.
        worker = [
            str(BIN / "ray"), "start", f"--address=127.0.0.1:{self.gcs_port}", *common,
            "--num-cpus=2",
            '--resources={"node_b": 1}',
            "--temp-dir=/tmp/ray",
            *self._agent_options("node_b"),
        ]  # fmt: skip
        self.nodes.append(Node("B", PRIVATE_TMP + worker, self.env, self.work / "node-b.log"))
        wait_until("both nodes alive", NODE_UP_S, self._both_nodes_alive, interval_s=2)

    def _both_nodes_alive(self) -> bool:
        for node in self.nodes:
            node.check_alive()
        return {"node_a", "node_b"} <= set(self.node_of_id().values())

    def node_of_id(self) -> dict[str, str]:
        """Alive node id -> "node_a" / "node_b" (from its custom resource)."""
        from ray.util.state import list_nodes

        names = {}
        for node in list_nodes(address=self.dashboard, filters=[("state", "=", "ALIVE")], detail=True):
            for name in ("node_a", "node_b"):
                if name in node.resources_total:
                    names[node.node_id] = name
        return names

    def replica_nodes(self) -> dict[str, str]:
        """Deployment name -> node name of its alive replica actors."""
        from ray.util.state import list_actors

        node_of_id = self.node_of_id()
        placed = {}
        for actor in list_actors(address=self.dashboard, filters=[("state", "=", "ALIVE")], detail=True, limit=1000):
            if actor.class_name.startswith(f"ServeReplica:{APP}:"):
                placed[actor.class_name.rsplit(":", 1)[1]] = node_of_id.get(actor.node_id, actor.node_id)
        return placed

    def run(self, *command: str, timeout_s: float = 120) -> str:
        done = subprocess.run(
            [str(BIN / command[0]), *command[1:]], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        if done.returncode != 0:
            raise CheckFailed(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def stop(self) -> None:
        for node in reversed(self.nodes):  # the worker first, then the head
            node.stop()
        self._kill_stragglers()

    def _kill_stragglers(self) -> None:
        """Workers that left the nodes' process groups still name our GCS address on their command line."""
        for pid in pids_naming(f"127.0.0.1:{self.gcs_port}".encode()):
            log(f"killing leftover process {pid} of this cluster")
            kill(pid)

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(("127.0.0.1", port)) == 0
