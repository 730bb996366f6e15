"""Alembic environment: runs migrations on the connection `Database.upgrade` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from serve_app.storage.models import Base

config = context.config


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")

_connection = config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:  # the alembic command line, with sqlalchemy.url from alembic.ini
    with create_engine(config.get_main_option("sqlalchemy.url")).begin() as _own:
        _run(_own)
