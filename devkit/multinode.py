"""The service split over two Ray nodes on one machine, end to end.

    sudo .venv/bin/python scripts/multinode_check.py      # root: unshare, and PostgreSQL as `postgres`

What it does, each step bounded in time:

1. Starts a throwaway PostgreSQL server (devkit/postgres_server.py)
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
   the work dir. Uploads are spooled in the work dir, not in /tmp: the
   ingress replica is killed, not closed, and would leave its folder behind.

Prints PASS or FAIL with the time of each step; the exit status is 0 on PASS,
77 when this machine cannot run it (SKIP).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from devkit.media import jpeg_bytes, textured_frame, write_video
from devkit.postgres_server import PostgresServer, find_bin_dir
from devkit.ray_nodes import APP, PRIVATE_TMP, REPO, CheckFailed, TwoNodeCluster, log, wait_until
from devkit.users import create_users
from tcp_proxy.client import Client, ServerError

CLUSTER_CONFIG = REPO / "config" / "serve.cluster.yaml"
SHARED_PARENT = "/var/tmp"  # seen by both nodes; node B's /tmp is its own
DEPLOY_S = 300
REQUEST_S = 180
PASSWORD = "s3cret-pass"
USERS = {"alice": False, "vip": True}  # username -> is_vip
# Placement of this check: the cluster config's resources, mapped to the two nodes.
NODE_OF_RESOURCE = {"ingress": "node_a", "cpu_stage": "node_b"}
EXPECTED_PLACEMENT = {
    "TCPIngress": "node_a",
    "FrameExtractor": "node_b",
    "VGGTInference": "node_b",
    "GlbExporter": "node_b",
}


def check_config(cluster: TwoNodeCluster, database_url: str, storage_root: Path, spool_dir: Path) -> dict:
    """config/serve.cluster.yaml for this machine: tiny model on CPU, one replica each, pinned to A or B;
    uploads spooled under `spool_dir` (in the work dir: a replica killed at teardown leaves nothing in /tmp)."""
    config = yaml.safe_load(CLUSTER_CONFIG.read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": cluster.http_port}
    app = config["applications"][0]
    app["args"].update(
        model={"preset": "tiny", "device": "cpu"},
        storage={"database_url": database_url, "storage_root": str(storage_root)},
        frames={"fps": 1.0, "max_frames": 4},  # 3 frames from the 3 s clip
    )
    app["args"]["proxy"].update(host="127.0.0.1", port=cluster.tcp_port, spool_dir=str(spool_dir))
    for deployment in app["deployments"]:
        deployment.pop("autoscaling_config", None)  # Serve takes a replica count or autoscaling, not both
        deployment["num_replicas"] = 1
        options = deployment["ray_actor_options"]
        # the CPU shares are sized for real nodes (docs/BENCHMARKS.md "Cores per GPU"); node B has 2 CPUs
        # for three stages here, so each asks for at most half a CPU
        options["num_cpus"] = min(options.get("num_cpus", 1), 0.5)
        resources = {NODE_OF_RESOURCE[name]: amount for name, amount in options.get("resources", {}).items()}
        if options.pop("num_gpus", 0):  # no GPU here: the inference stage goes where the stages go
            resources["node_b"] = 0.01
        options["resources"] = resources
    return config


def reconstruct_over_tcp(port: int, video: Path) -> dict[str, bytes]:
    """LOGIN + IMAGE, LOGIN (VIP) + VIDEO, then GET_GLB of both; {hash: GLB bytes}."""
    images = [jpeg_bytes(textured_frame(i, blur=1.0, seed=i)) for i in range(3)]
    results = {}
    for user, command, payload in (("alice", "images", images), ("vip", "video", video)):
        with Client("127.0.0.1", port, timeout=REQUEST_S) as client:
            logged_in = client.login(user, PASSWORD)
            if logged_in[0] is not True:
                raise CheckFailed(f"LOGIN {user}: {list(logged_in)}")
            started = time.monotonic()
            try:
                name, data = getattr(client, command)(payload)
            except ServerError as exc:
                raise CheckFailed(f"{command.upper()} as {user}: {exc.code}") from None
            if data[:4] != b"glTF":
                raise CheckFailed(f"{command.upper()} as {user}: {data[:80]!r}")
            seconds = time.monotonic() - started
            log(f"{command.upper()} as {user}: {name} ({len(data)} bytes, {seconds:.1f} s)")
            results[name.removesuffix(".glb")] = data
    with Client("127.0.0.1", port, timeout=REQUEST_S) as client:  # no login: the hash is the share link
        for hashed, data in results.items():
            try:
                same = client.get(hashed) == data
            except ServerError:
                same = False
            if not same:
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


def run() -> int:
    """The whole check, teardown included; 0 on PASS, 1 on FAIL, 77 when it cannot run here."""
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
        step("create users", lambda: create_users(database_url, USERS, PASSWORD))
        step("start node A (head) and node B (private /tmp)", cluster.start)
        storage_root = work / "storage"
        storage_root.mkdir()
        spool_dir = work / "spool"  # node A's; the ingress replica is killed at teardown, its folder goes with work
        spool_dir.mkdir()
        config = check_config(cluster, database_url, storage_root, spool_dir)
        config_path = work / "serve.multinode.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
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
        over_tcp = lambda: reconstruct_over_tcp(cluster.tcp_port, video)  # noqa: E731
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
