"""The database connection: an engine, sessions, and schema upgrades.

`Database(url)` works with any SQLAlchemy URL; the default of the service is
`sqlite:///./vggt_app.db`, and PostgreSQL is reached through psycopg 3
(`postgresql+psycopg://user:password@host:5432/dbname`; a plain `postgresql://`
URL uses that driver too). `upgrade()` brings an empty database, or one left
by an earlier deployment, to the current schema with Alembic.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, StaticPool

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
UPGRADE_ATTEMPTS = 8
# Alembic's `context` and `op` are module-level proxies: one migration run per process at a time.
ALEMBIC_RUN_LOCK = threading.Lock()
# PostgreSQL: a transaction-scoped advisory lock (any constant key) makes concurrent upgrades take turns.
UPGRADE_LOCK_KEY = 0x76676774  # "vggt"
UPGRADE_LOCK_TIMEOUT = "60s"
POSTGRES_DRIVER = "postgresql+psycopg"


class Database:
    """A SQLAlchemy engine and session factory for one database URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(_with_driver(url))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block succeeds and rolls back otherwise."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def upgrade(self) -> None:
        """Run the Alembic migrations up to the newest revision.

        Several processes may start on one fresh database at once (the replicas of
        an application). On PostgreSQL they take turns (an advisory lock held for
        the migration's transaction), so each later one finds the work done. On
        SQLite the one that loses a race on creating a table or stamping the
        revision fails, rolls back and tries again, and then finds the work done;
        any database error a race causes is retried the same way. A database that
        cannot be reached fails at once, without the retries.
        """
        with self.engine.connect():
            pass
        for attempt in range(1, UPGRADE_ATTEMPTS + 1):
            try:
                with ALEMBIC_RUN_LOCK, self.engine.begin() as connection:
                    _wait_for_other_upgrades(connection)
                    config = _alembic_config(self.url)
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                return
            except DBAPIError:
                if attempt == UPGRADE_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt * (1 + random.random()))  # let the winner finish

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


def probe_engine(url: str, *, connect_timeout_s: float) -> Engine:
    """An engine for health checks: a new connection each time (no pooled one to go stale), and on
    PostgreSQL a bounded connect (libpq counts whole seconds, at least 2)."""
    url = _with_driver(url)
    if url.startswith("sqlite"):
        return create_engine(url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": connect_timeout_s})
    connect_args = {"connect_timeout": max(2, math.ceil(connect_timeout_s))} if url.startswith("postgresql") else {}
    return create_engine(url, poolclass=NullPool, connect_args=connect_args)


def ping(engine: Engine) -> None:
    """Raise unless the database answers a query."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1")).scalar_one()


def _wait_for_other_upgrades(connection: Connection) -> None:
    """PostgreSQL: hold the upgrade lock until this transaction ends (waiting at most UPGRADE_LOCK_TIMEOUT)."""
    if connection.dialect.name != "postgresql":
        return
    connection.execute(text(f"SET LOCAL lock_timeout = '{UPGRADE_LOCK_TIMEOUT}'"))
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})


def _with_driver(url: str) -> str:
    """`postgresql://` (SQLAlchemy's default driver there is psycopg2) means psycopg 3 here."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername=POSTGRES_DRIVER).render_as_string(hide_password=False)
    return url


def retry_on_conflict(write: Callable[[], None]) -> None:
    """Run `write`, an insert-or-update of one row; if another process inserted the same key between
    its read and its insert (IntegrityError), run it once more: it then finds the row and updates it."""
    try:
        write()
    except IntegrityError:
        write()


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        # one shared connection, or every session would see its own empty database
        poolclass=StaticPool if in_memory else None,
    )
    event.listen(engine, "connect", _enable_sqlite_foreign_keys)
    return engine


def _enable_sqlite_foreign_keys(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
