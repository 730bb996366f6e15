"""The database connection: an engine, sessions, and schema upgrades.

`Database(url)` works with any SQLAlchemy URL; the default of the service is
`sqlite:///./vggt_app.db`. `upgrade()` brings an empty database, or one left
by an earlier deployment, to the current schema with Alembic.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
UPGRADE_ATTEMPTS = 8


class Database:
    """A SQLAlchemy engine and session factory for one database URL."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)
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
        an application): the one that loses a race on creating a table or stamping
        the revision fails, rolls back and tries again, and then finds the work done.
        """
        for attempt in range(1, UPGRADE_ATTEMPTS + 1):
            try:
                with self.engine.begin() as connection:
                    config = _alembic_config(self.url)
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                return
            except (OperationalError, IntegrityError, ProgrammingError):
                if attempt == UPGRADE_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt * (1 + random.random()))  # let the winner finish

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()


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
