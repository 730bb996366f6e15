"""Schema upgrades on an empty database and on databases of earlier deployments."""

from datetime import datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text, update

from serve_app.config import AuthSettings
from serve_app.storage import Database, GlbStore, ScryptParams, UserStore
from serve_app.storage import lifecycle as lifecycle_module
from serve_app.storage.blob_root import LocalRoot
from serve_app.storage.database import _alembic_config
from serve_app.storage.lifecycle import ResultLifecycle
from serve_app.storage.models import Base, GlbFile, utcnow

HEAD = "0008"
FAST = ScryptParams(n=2**10, r=8, p=1)


def current_revision(db: Database) -> str | None:
    """The Alembic revision the database is at (None before any upgrade)."""
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()

# The schema earlier deployments created (SQLAlchemy create_all, no Alembic). Those deployments
# ran on SQLite only, so these shapes (SQLite's DATETIME, AUTOINCREMENT) are tested on SQLite only.
LEGACY_SCHEMA = [
    """CREATE TABLE users (
        id INTEGER NOT NULL PRIMARY KEY,
        username VARCHAR(50) NOT NULL UNIQUE,
        password_hash VARCHAR(255) NOT NULL,
        is_vip BOOLEAN,
        vip_expire_time DATETIME,
        status INTEGER,
        created_at DATETIME,
        updated_at DATETIME)""",
    """CREATE TABLE glb_files (
        id INTEGER NOT NULL PRIMARY KEY,
        hashed_name VARCHAR(64) NOT NULL UNIQUE,
        original_name VARCHAR(255),
        file_path VARCHAR(500) NOT NULL,
        user_id INTEGER REFERENCES users (id),
        file_size INTEGER,
        created_at DATETIME,
        is_public BOOLEAN)""",
]

# An older shape still: no VIP expiry, no timestamps on users, no is_public.
OLDER_SCHEMA = [
    """CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        is_vip INTEGER DEFAULT 0,
        status INTEGER DEFAULT 1)""",
    """CREATE TABLE glb_files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        hashed_name TEXT NOT NULL UNIQUE,
        original_name TEXT,
        file_path TEXT NOT NULL,
        user_id INTEGER,
        file_size INTEGER,
        created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)""",
]

HASH = "ab" * 32


def make_database(path, statements):
    db = Database(f"sqlite:///{path}")
    with db.engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    return db


def add_legacy_data(db, storage_root):
    (storage_root / "out" / "2024-05-01").mkdir(parents=True)
    (storage_root / "out" / "2024-05-01" / f"{HASH}.glb").write_bytes(b"glTF legacy")
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (id, username, password_hash, is_vip, status) VALUES (1, 'demo', '123456', 1, 1)")
        )
        connection.execute(
            text("INSERT INTO users (id, username, password_hash, is_vip, status) VALUES (2, 'old', 'pw', 0, 0)")
        )
        connection.execute(
            text(
                "INSERT INTO glb_files (hashed_name, original_name, file_path, user_id, file_size) "
                f"VALUES ('{HASH}', 'scan.mp4', 'out/2024-05-01/{HASH}.glb', 1, 11)"
            )
        )


def columns(db, table):
    return {column["name"] for column in inspect(db.engine).get_columns(table)}


def test_empty_database_is_upgraded_to_the_models(database_url):
    db = Database(database_url)
    assert current_revision(db) is None
    db.upgrade()
    assert current_revision(db) == HEAD
    with db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
    db.upgrade()  # a second start changes nothing
    assert current_revision(db) == HEAD


def test_in_memory_database_can_be_upgraded_and_used():
    db = Database("sqlite://")
    db.upgrade()
    users = UserStore(db, AuthSettings(), password_params=FAST)
    users.create("alice", "pw")
    assert users.authenticate("alice", "pw") is not None


def test_legacy_database_keeps_its_data_and_logins(tmp_path):
    storage_root = tmp_path / "storage"
    db = make_database(tmp_path / "vggt_app.db", LEGACY_SCHEMA)
    add_legacy_data(db, storage_root)

    db.upgrade()

    assert current_revision(db) == HEAD
    assert "ix_glb_files_user_id" in {index["name"] for index in inspect(db.engine).get_indexes("glb_files")}
    users = UserStore(db, AuthSettings(), password_params=FAST)
    info = users.authenticate("demo", "123456")
    assert info is not None and info.id == 1 and info.is_vip
    assert users.authenticate("old", "pw") is None  # disabled stays disabled
    with db.engine.connect() as connection:
        stored = connection.execute(text("SELECT password_hash FROM users WHERE id = 1")).scalar_one()
    assert stored.startswith("scrypt$")
    store = GlbStore(db, storage_root)
    assert store.read(f"{HASH}.glb") == b"glTF legacy"
    assert store.save(b"glTF new", info.id, "new.jpg").file_path.is_file()


def test_older_shaped_database_gets_its_missing_columns(tmp_path):
    storage_root = tmp_path / "storage"
    db = make_database(tmp_path / "vggt_app.db", OLDER_SCHEMA)
    add_legacy_data(db, storage_root)

    db.upgrade()

    assert {"vip_expire_time", "created_at", "updated_at"} <= columns(db, "users")
    assert "is_public" in columns(db, "glb_files")
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT is_public FROM glb_files")).scalar_one() == 0
    users = UserStore(db, AuthSettings(), password_params=FAST)
    info = users.authenticate("demo", "123456")
    assert info is not None and info.is_vip
    users.set_vip("demo", True)
    users.create("newcomer", "pw")
    store = GlbStore(db, storage_root)
    assert store.read(HASH) == b"glTF legacy"
    saved = store.save(b"glTF new", info.id, "new.jpg", is_public=True)
    assert store.read(saved.hashed_name) == b"glTF new"


def _upgrade_at(url: str, start_at: float) -> str | None:
    """In a fresh process: wait for the common start, upgrade, report the revision (or the error)."""
    import time as clock

    from serve_app.storage import Database as FreshDatabase

    clock.sleep(max(0.0, start_at - clock.time()))
    db = FreshDatabase(url)
    try:
        db.upgrade()
        return current_revision(db)
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return f"{type(exc).__name__}: {exc}"
    finally:
        db.dispose()


def test_replicas_upgrading_one_fresh_database_at_once_all_succeed(database_url):
    import multiprocessing
    import time as clock

    url = database_url
    context = multiprocessing.get_context("spawn")
    start_at = clock.time() + 4.0  # after every process has imported what it needs
    with context.Pool(5) as pool:
        results = pool.starmap(_upgrade_at, [(url, start_at)] * 5)
    assert results == [HEAD] * 5, results
    db = Database(url)
    assert set(inspect(db.engine).get_table_names()) >= {"users", "glb_files", "alembic_version"}
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    db.dispose()


def test_threads_upgrading_one_fresh_database_at_once_all_succeed(database_url):
    import threading

    databases = [Database(database_url) for _ in range(4)]
    start = threading.Barrier(len(databases))
    errors = []

    def upgrade(db):
        start.wait(timeout=30)
        try:
            db.upgrade()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=upgrade, args=(db,)) for db in databases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
    assert [current_revision(db) for db in databases] == [HEAD] * len(databases)
    users = UserStore(databases[0], AuthSettings(), password_params=FAST)
    users.create("alice", "pw")
    assert UserStore(databases[-1], AuthSettings(), password_params=FAST).authenticate("alice", "pw") is not None
    for db in databases:
        db.dispose()


# -- 0008: results stored before dates were kept get the upgrade's time --------------------------
def upgrade_to(db: Database, revision: str) -> None:
    config = _alembic_config(db.url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def dates(db: Database) -> dict[str, datetime | None]:
    with db.session() as session:
        return dict(session.execute(select(GlbFile.hashed_name, GlbFile.created_at)).all())


@pytest.fixture
def undated(database_url, tmp_path):
    """A database at 0007 holding an undated result ("aa"...) and a dated one ("bb"...), then upgraded;
    (database, storage folder, the upgrade's start and end)."""
    db = Database(database_url)
    upgrade_to(db, "0007")
    storage_root = tmp_path / "storage"
    user = UserStore(db, AuthSettings(), password_params=FAST).create("alice", "pw")
    store = GlbStore(db, storage_root)
    for name in ("undated", "dated"):
        store.save(f"glTF {name}".encode(), user.id, f"{name}.jpg")
    with db.session() as session:
        session.execute(update(GlbFile).where(GlbFile.original_name == "undated.jpg").values(created_at=None))
        session.execute(
            update(GlbFile).where(GlbFile.original_name == "dated.jpg").values(created_at=datetime(2020, 1, 2, 3, 4, 5))
        )
    before = utcnow()
    db.upgrade()
    after = utcnow()
    yield db, storage_root, before, after
    db.dispose()


def names_by_original(db: Database) -> dict[str, str]:
    with db.session() as session:
        return dict(session.execute(select(GlbFile.original_name, GlbFile.hashed_name)).all())


def test_an_undated_result_gets_the_upgrade_time_and_a_dated_one_keeps_its_own(undated):
    db, _, before, after = undated
    assert current_revision(db) == HEAD
    names = names_by_original(db)
    stamped = dates(db)
    assert before - timedelta(seconds=1) <= stamped[names["undated.jpg"]] <= after + timedelta(seconds=1)
    assert stamped[names["dated.jpg"]] == datetime(2020, 1, 2, 3, 4, 5)
    db.upgrade()  # a second start changes nothing
    assert dates(db) == stamped


@pytest.mark.parametrize(
    ("after_days", "expired"),
    [(timedelta(days=30) - timedelta(seconds=1), False), (timedelta(days=30), False), (timedelta(days=30, seconds=1), True)],
    ids=["under", "at", "over"],
)
def test_retention_counts_from_the_upgrade_for_an_undated_result(undated, monkeypatch, after_days, expired):
    db, storage_root, _, _ = undated
    names = names_by_original(db)
    stamp = dates(db)[names["undated.jpg"]]
    monkeypatch.setattr(lifecycle_module, "utcnow", lambda: stamp + after_days)
    gone = ResultLifecycle(db, LocalRoot(storage_root)).expire(30).hashes
    # the dated result (2020) is long past 30 days whatever the clock says here
    assert sorted(gone) == sorted([names["dated.jpg"]] + ([names["undated.jpg"]] if expired else []))
