"""The real service for the integration tests: a local Ray cluster running the app.

`service` (session scope) starts Ray (4 logical CPUs, no dashboard) and
Serve's HTTP proxy on a free loopback port, deploys `serve_app.app:build_app`
at route prefix `/` with the untrained tiny model on CPU, a temporary SQLite
file and storage root, and test-sized limits, and creates the test users
straight in that database. `Service.handle` is its TCPIngress deployment's
handle (status, port, recent requests). Tests talk to it over real sockets with the
plain client of `tests/support/wire_client.py`; each connection comes from its own
loopback address (127.0.x.y) so the IP-bound sessions of one test never
leak into another.

`service_without_model` deploys the same app a second time into the same
cluster (its own name, port, database) with a checkpoint path that does not
exist, for the "model not loaded" behaviour.

`postgres_service` (module scope) deploys it once more with its database on
the test PostgreSQL server, and deletes that app when the module is done, so
at most two apps share the cluster's CPUs at any time (it runs before
test_service.py, whose two apps are session-scoped). `s3_service` does the
same with its GLBs in a bucket of the test S3 server; the cluster starts
with that server's dummy credentials in its environment, since Ray's workers
take theirs from the cluster, not from the test process.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from service_users import (
    ACCOUNT_RECHECK_S,
    APP_NAME,
    MAX_PAYLOAD,
    NO_MODEL_APP_NAME,
    POSTGRES_APP_NAME,
    S3_APP_NAME,
    READ_TIMEOUT_S,
    SESSION_TTL_S,
    SMALL_FRAME_TIMEOUT_S,
    VIDEO_FPS,
    create_users,
    free_port,
)


@dataclass
class Service:
    name: str
    port: int  # the TCP protocol
    handle: Any  # TCPIngress
    http_port: int | None  # Serve's HTTP proxy (share pages); None when the app has no route
    database_url: str
    storage_root: Path
    spool_dir: Path
    args: dict  # what the app was deployed with (a redeploy changes a copy)

    def stored(self) -> tuple[set[str], set[str]]:
        """(hashed names with a row, hashed names with a .glb file) right now."""
        from sqlalchemy import select

        from serve_app.storage.database import Database
        from serve_app.storage.models import GlbFile

        db = Database(self.database_url)
        try:
            with db.session() as session:
                rows = set(session.scalars(select(GlbFile.hashed_name)))
        finally:
            db.dispose()
        files = {p.stem for p in (self.storage_root / "out").rglob("*.glb")} if (self.storage_root / "out").exists() else set()
        return rows, files

    def row(self, hashed_name: str):
        from sqlalchemy import select

        from serve_app.storage.database import Database
        from serve_app.storage.models import GlbFile

        db = Database(self.database_url)
        try:
            with db.session() as session:
                return session.scalar(select(GlbFile).where(GlbFile.hashed_name == hashed_name))
        finally:
            db.dispose()



def _args(tmp: Path, **model: Any) -> dict:
    return {
        "model": {"preset": "tiny", "device": "cpu", **model},
        "storage": {"database_url": f"sqlite:///{tmp / 'service.db'}", "storage_root": str(tmp / "store")},
        "frames": {"fps": VIDEO_FPS, "max_frames": 4, "max_images": 20},
        "auth": {"account_recheck_s": ACCOUNT_RECHECK_S},
        "proxy": {
            "host": "127.0.0.1",
            "port": free_port(),  # fixed, as in production: a restarted ingress listens on it again
            "max_payload_bytes": MAX_PAYLOAD,
            "read_timeout_s": READ_TIMEOUT_S,
            "small_frame_timeout_s": SMALL_FRAME_TIMEOUT_S,
            "idle_timeout_s": 60.0,
            "session_ttl_s": SESSION_TTL_S,
            "max_pending_reconstructions": 32,
            "max_pending_per_user": 10,  # test_twenty_concurrent_clients: 10 each for two users
            "spool_dir": str(tmp / "spool"),
        },
    }


def _deploy(name: str, args: dict, tmp: Path, http_port: int | None = None) -> Service:
    from ray import serve

    from serve_app.app import build_app

    (tmp / "spool").mkdir(exist_ok=True)
    serve.run(build_app(args), name=name, route_prefix="/" if http_port else None, blocking=False)
    handle = serve.get_deployment_handle("TCPIngress", name)
    deadline = time.monotonic() + 300
    while True:  # serve.run returns once the app is RUNNING; the port is the ingress's
        try:
            port = handle.get_port.remote().result(timeout_s=60)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    return Service(
        name=name,
        port=port,
        handle=handle,
        http_port=http_port,
        database_url=args["storage"]["database_url"],
        storage_root=Path(args["storage"]["storage_root"]),
        spool_dir=tmp / "spool",
        args=args,
    )


@pytest.fixture(scope="session")
def ray_cluster():
    ray = pytest.importorskip("ray")
    from ray import serve
    from s3_server import DUMMY_AWS_ENV

    with pytest.MonkeyPatch.context() as patch:  # the workers inherit it: no real AWS credentials ever used
        for name, value in DUMMY_AWS_ENV.items():
            patch.setenv(name, value)
        ray.init(
            address="local",  # never attach to a cluster someone else started
            num_cpus=4,  # logical: two apps of 1.9 CPUs each fit
            include_dashboard=False,
            _system_config={"metrics_report_interval_ms": 1000},
        )
    http_port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    try:
        yield http_port  # the port of Serve's HTTP proxy
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def service(ray_cluster, tmp_path_factory) -> Service:
    tmp = tmp_path_factory.mktemp("service")
    args = _args(tmp)
    create_users(args["storage"]["database_url"])
    return _deploy(APP_NAME, args, tmp, http_port=ray_cluster)


@pytest.fixture(scope="session")
def service_without_model(ray_cluster, tmp_path_factory) -> Service:
    tmp = tmp_path_factory.mktemp("nomodel")
    args = _args(tmp, preset="vggt-1b", checkpoint=str(tmp / "missing-model.pt"))
    service = _deploy(NO_MODEL_APP_NAME, args, tmp)  # the ingress creates the database at start
    create_users(args["storage"]["database_url"])
    return service


@pytest.fixture(scope="module")
def postgres_service(ray_cluster, postgres_server, tmp_path_factory):
    from ray import serve

    tmp = tmp_path_factory.mktemp("postgres")
    args = _args(tmp)
    args["storage"]["database_url"] = postgres_server.new_database_url()
    create_users(args["storage"]["database_url"])
    service = _deploy(POSTGRES_APP_NAME, args, tmp)
    try:
        yield service
    finally:
        serve.delete(POSTGRES_APP_NAME)


@pytest.fixture(scope="module")
def s3_service(ray_cluster, s3_server, tmp_path_factory):
    """(service, bucket URL): the app with `storage.storage_root` on a fresh bucket of the test S3 server."""
    from ray import serve

    tmp = tmp_path_factory.mktemp("s3")
    args = _args(tmp)
    bucket_url = s3_server.new_bucket_url("service")
    args["storage"].update(storage_root=bucket_url, s3_endpoint_url=s3_server.endpoint_url)
    create_users(args["storage"]["database_url"])
    service = _deploy(S3_APP_NAME, args, tmp)
    try:
        yield service, bucket_url
    finally:
        serve.delete(S3_APP_NAME)


# --- media ----------------------------------------------------------------------------


def _pattern(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x * 255 // width), (y * 255 // height), ((x + y) * 3) % 256], axis=-1).astype(np.uint8)
    noise = rng.integers(0, 40, size=img.shape, dtype=np.uint8)
    return img + noise // 2


def encode_image(array: np.ndarray, fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


@pytest.fixture(scope="session")
def jpegs() -> list[bytes]:
    return [encode_image(_pattern(160, 120, i), "JPEG") for i in range(3)]


@pytest.fixture(scope="session")
def pngs() -> list[bytes]:
    return [encode_image(_pattern(160, 120, 10 + i), "PNG") for i in range(2)]


def make_video(path: Path, seconds: float = 3.0, fps: int = 10, size: tuple[int, int] = (160, 120)) -> Path:
    """A short H.264 (or MPEG-4 part 2) MP4 made with PyAV."""
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
        except Exception:
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.roll(_pattern(width, height, 0), i * 3, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def video_bytes(tmp_path_factory) -> bytes:
    path = make_video(tmp_path_factory.mktemp("media") / "clip.mp4")
    return path.read_bytes()


def pytest_collection_modifyitems(config, items):
    # The `serve run` subprocess test starts its own cluster: it runs first, before the
    # session fixture's cluster exists, so two clusters never share the cores. The other
    # integration tests run last, so that cluster is not idling through the unit tests.
    def rank(item) -> int:
        if "test_serve_run_cli" in item.nodeid:
            return 0
        return 2 if "tests/integration/" in item.nodeid.replace(os.sep, "/") else 1

    items.sort(key=rank)
