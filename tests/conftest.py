"""Fixtures for the stage and pipeline tests: real encoded photos and a video, a predictable runner.

Imports of media and storage libraries stay inside the fixtures: tests/vggt must
run where only torch, numpy, pillow and pytest are installed (scripts/gpu_checks.sh).
"""

from __future__ import annotations

import pytest


@pytest.fixture
def predictable_runner():
    from stage_doubles import PredictableRunner

    return PredictableRunner()


@pytest.fixture(scope="session")
def photo_bytes() -> list[bytes]:
    """Three real JPEG photos, 160x120."""
    from devkit import media as media_files

    return [media_files.jpeg_bytes(media_files.textured_frame(i, blur=1.0, seed=i)) for i in range(3)]


@pytest.fixture(scope="session")
def video_clip(tmp_path_factory):
    """A real H.264 MP4: 3 s at 10 fps, 160x120."""
    from devkit import media as media_files

    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    return media_files.write_video(path, [media_files.numbered_frame(i) for i in range(30)], fps=10)


@pytest.fixture
def owned_store(tmp_path):
    """A GLB store on a fresh SQLite database holding one user, alice, with id 7."""
    from serve_app.storage import Database, GlbStore
    from serve_app.storage.models import User

    db = Database(f"sqlite:///{tmp_path / 'app.db'}")
    db.upgrade()
    with db.session() as session:
        session.add(User(id=7, username="alice", password_hash="x"))
    yield GlbStore(db, tmp_path / "storage")
    db.dispose()


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server (moto) for this test run, with dummy AWS credentials in the environment;
    `new_bucket_url()` gives each test an empty bucket. Skips when moto or s3fs is missing."""
    pytest.importorskip("moto.server", reason="moto is missing: pip install -e '.[test,s3]'")
    pytest.importorskip("s3fs", reason="s3fs is missing: pip install -e '.[s3]'")
    from s3_server import DUMMY_AWS_ENV, S3Server

    server = S3Server()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DUMMY_AWS_ENV.items():
            patch.setenv(name, value)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """A PostgreSQL server for this test run; `new_database_url()` gives each test an empty database.

    Skips when the server programs or the driver are missing (CI machines have both).
    """
    from devkit.postgres_server import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL server programs (initdb, pg_ctl, postgres) not found; CI machines have them: "
            "install Debian's postgresql package or set PG_BIN to their folder"
        )
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install -e '.[postgres]'")
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
