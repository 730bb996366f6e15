#!/usr/bin/env python
"""The service split over two Ray nodes on one machine, end to end.

    sudo .venv/bin/python scripts/multinode_check.py      # root: unshare, and PostgreSQL as `postgres`

What it does, each step bounded in time:

1. Starts a throwaway PostgreSQL server (tests/support/postgres_server.py)
   and creates the test users in a fresh database.
2. Starts a two-node Ray cluster with token authentication
   (RAY_AUTH_MODE=token, a token file of its own; ~/.ray is not touched):
   node A is the head (`--resources='{"node_a": 1}'`, temp dir under the
   work dir); node B joins it from its own mount namespace with a private,
   empty /tmp (`unshare --mount`, a tmpfs on /tmp) and its temp dir there,
   so the two nodes share no /tmp file, as two machines would not. The
   storage root is under /var/tmp, which both see (shared storage).
3. Deploys config/serve.cluster.yaml with `serve deploy` through the
   dashboard (authenticated by the token), changed for this machine: the
   tiny untrained model on CPU, the PostgreSQL URL, one replica each,
   TCPIngress pinned to node A and the three stages to node B. Checks that
   the replicas run where they were pinned.
4. Over TCP: LOGIN + IMAGE (3 JPEGs), LOGIN + VIDEO (a VIP user, a
   generated 3 s clip: the upload is spooled on node A and decoded on node
   B), GET_GLB of both from a fresh connection; then checks the GLB rows in
   PostgreSQL and their files under the storage root.
5. Tears everything down, also on failure or Ctrl-C: both nodes (SIGTERM to
   their `ray start --block`, then their process groups; `ray stop` is not
   used, since it would stop every Ray cluster on the machine), PostgreSQL,
   the work dir.

Prints PASS or FAIL with the time of each step; the exit status is 0 on PASS.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "support"))

from media_files import jpeg_bytes, textured_frame, write_video  # noqa: E402
from postgres_server import PostgresServer, find_bin_dir  # noqa: E402
from service_users import PASSWORD, create_users, free_port  # noqa: E402
from wire_client import Conn  # noqa: E402

BIN = Path(sys.executable).parent  # ray and serve of this venv
CLUSTER_CONFIG = REPO / "config" / "serve.cluster.yaml"
APP = "vggt"
SHARED_PARENT = "/var/tmp"  # seen by both nodes; node B's /tmp is its own
NODE_UP_S = 120
DEPLOY_S = 300
STOP_S = 30
REQUEST_S = 180
# Placement of this check: the cluster config's resources, mapped to the two nodes.
NODE_OF_RESOURCE = {"ingress": "node_a", "cpu_stage": "node_b"}
EXPECTED_PLACEMENT = {
    "TCPIngress": "node_a",
    "FrameExtractor": "node_b",
    "VGGTInference": "node_b",
    "GlbExporter": "node_b",
}
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
    pass


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
        marker = f"127.0.0.1:{self.gcs_port}".encode()
        for proc in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if marker in (proc / "cmdline").read_bytes() and int(proc.name) != os.getpid():
                    log(f"killing leftover process {proc.name} of this cluster")
                    os.kill(int(proc.name), signal.SIGKILL)

    @staticmethod
    def _listening(port: int) -> bool:
        with socket.socket() as probe:
            probe.settimeout(1)
            return probe.connect_ex(("127.0.0.1", port)) == 0


def check_config(cluster: TwoNodeCluster, database_url: str, storage_root: Path) -> dict:
    """config/serve.cluster.yaml for this machine: tiny model on CPU, one replica each, pinned to A or B."""
    config = yaml.safe_load(CLUSTER_CONFIG.read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": cluster.http_port}
    app = config["applications"][0]
    app["args"].update(
        model={"preset": "tiny", "device": "cpu"},
        storage={"database_url": database_url, "storage_root": str(storage_root)},
        frames={"fps": 1.0, "max_frames": 4},  # 3 frames from the 3 s clip
    )
    app["args"]["proxy"].update(host="127.0.0.1", port=cluster.tcp_port)
    for deployment in app["deployments"]:
        deployment["num_replicas"] = 1
        options = deployment["ray_actor_options"]
        resources = {NODE_OF_RESOURCE[name]: amount for name, amount in options.get("resources", {}).items()}
        if options.pop("num_gpus", 0):  # no GPU here: the inference stage goes where the stages go
            resources["node_b"] = 0.01
        options["resources"] = resources
    return config


def reconstruct_over_tcp(port: int, video: bytes) -> dict[str, bytes]:
    """LOGIN + IMAGE, LOGIN (VIP) + VIDEO, then GET_GLB of both; {hash: GLB bytes}."""
    images = [jpeg_bytes(textured_frame(i, blur=1.0, seed=i)) for i in range(3)]
    results = {}
    for user, command, payload in (("alice", "images", images), ("vip", "video", video)):
        with Conn(port, timeout=REQUEST_S) as conn:
            logged_in = conn.login(user, PASSWORD)
            if logged_in[0] is not True:
                raise CheckFailed(f"LOGIN {user}: {logged_in}")
            started = time.monotonic()
            reply = getattr(conn, command)(payload)
            if reply.error or reply.data[:4] != b"glTF":
                raise CheckFailed(f"{command.upper()} as {user}: {reply.error or reply.data[:80]!r}")
            seconds = time.monotonic() - started
            log(f"{command.upper()} as {user}: {reply.name} ({len(reply.data)} bytes, {seconds:.1f} s)")
            results[reply.name.removesuffix(".glb")] = reply.data
    with Conn(port, timeout=REQUEST_S) as conn:  # no login: the hash is the share link
        for hashed, data in results.items():
            if conn.get_glb(hashed) != data:
                raise CheckFailed(f"GET_GLB {hashed}: not the bytes the reconstruction answered")
    return results


def check_stored(database_url: str, storage_root: Path, results: dict[str, bytes]) -> None:
    from sqlalchemy import select

    from serve_app.storage import Database
    from serve_app.storage.models import GlbFile, User

    db = Database(database_url)
    try:
        with db.session() as session:
            for hashed, data in results.items():
                row = session.scalar(select(GlbFile).where(GlbFile.hashed_name == hashed))
                if row is None:
                    raise CheckFailed(f"no glb_files row for {hashed} in PostgreSQL")
                owner = session.get(User, row.user_id)
                path = storage_root / row.file_path
                if not path.is_file() or path.read_bytes() != data:
                    raise CheckFailed(f"{path}: missing or not the GLB answered")
                log(f"stored: {owner.username} {row.original_name} -> {row.file_path}")
    finally:
        db.dispose()


def preflight() -> str | None:
    """Why this machine cannot run the check, or None."""
    if os.geteuid() != 0:
        return "needs root (unshare --mount and mount for node B's private /tmp)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    probe = subprocess.run([*PRIVATE_TMP, "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"unshare --mount cannot mount a private /tmp here: {probe.stderr.strip()}"
    if find_bin_dir() is None:
        return "needs the PostgreSQL server programs (initdb, pg_ctl, postgres) or $PG_BIN"
    return None


def interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    reason = preflight()
    if reason:
        print(f"SKIP: {reason}")
        return 77  # the conventional "skipped" status
    # A SIGTERM (a test runner's timeout) unwinds through the teardown like Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupt)
    work = Path(tempfile.mkdtemp(prefix="vggt-mn-", dir=SHARED_PARENT))
    os.chmod(work, 0o755)
    steps: list[tuple[str, float]] = []
    postgres = PostgresServer(find_bin_dir())
    cluster = TwoNodeCluster(work)
    # This driver's state queries are clients of the cluster too: the same token.
    os.environ.update({k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")})
    for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
        os.environ.pop(name, None)
    failure = None

    def step(name: str, action):
        started = time.monotonic()
        log(f"{name} ...")
        value = action()
        steps.append((name, time.monotonic() - started))
        return value

    try:
        step("start PostgreSQL", postgres.start)
        database_url = postgres.new_database_url()
        step("create users", lambda: create_users(database_url))
        step("start node A (head) and node B (private /tmp)", cluster.start)
        storage_root = work / "storage"
        storage_root.mkdir()
        config_path = work / "serve.multinode.yaml"
        config_path.write_text(yaml.safe_dump(check_config(cluster, database_url, storage_root), sort_keys=False))
        step("serve deploy", lambda: cluster.run("serve", "deploy", str(config_path), "-a", cluster.dashboard))

        def running() -> bool:
            for node in cluster.nodes:
                node.check_alive()
            status = yaml.safe_load(cluster.run("serve", "status", "-a", cluster.dashboard, timeout_s=60))
            app = (status.get("applications") or {}).get(APP) or {}
            if app.get("status") in ("DEPLOY_FAILED", "UNHEALTHY"):
                raise CheckFailed(f"application {app.get('status')}: {app.get('message')}")
            return app.get("status") == "RUNNING" and TwoNodeCluster._listening(cluster.tcp_port)

        step("application RUNNING, TCP port open", lambda: wait_until("the application", DEPLOY_S, running, 3))
        placed = step("replica placement", cluster.replica_nodes)
        log(f"placement: {json.dumps(placed, sort_keys=True)}")
        wrong = {name: placed.get(name) for name, node in EXPECTED_PLACEMENT.items() if placed.get(name) != node}
        if wrong:
            raise CheckFailed(f"replicas not where they were pinned: {wrong} (expected {EXPECTED_PLACEMENT})")
        video = write_video(work / "clip.mp4", [textured_frame(i, blur=1.0, seed=i) for i in range(30)], fps=10)
        video_bytes = video.read_bytes()
        over_tcp = lambda: reconstruct_over_tcp(cluster.tcp_port, video_bytes)  # noqa: E731
        results = step("LOGIN, IMAGE, VIDEO, GET_GLB over TCP", over_tcp)
        step("rows in PostgreSQL, files in storage", lambda: check_stored(database_url, storage_root, results))
    except (Exception, KeyboardInterrupt) as exc:
        failure = exc
        for node in cluster.nodes:
            log(f"node {node.name} log tail:\n{node.tail()}")
    finally:
        started = time.monotonic()
        cluster.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)
        steps.append(("teardown", time.monotonic() - started))

    print("\nmultinode check:")
    for name, seconds in steps:
        print(f"  {seconds:6.1f} s  {name}")
    print(f"  {sum(s for _, s in steps):6.1f} s  total")
    if failure is not None:
        print(f"FAIL: {failure!r}")
        return 1
    print("PASS: ingress on node A, stages on node B, PostgreSQL rows and shared files for IMAGE and VIDEO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
