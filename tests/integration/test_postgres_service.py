"""The running service with its database on PostgreSQL: the wire protocol end to end.

The `postgres_service` fixture deploys the app (tiny untrained model on CPU)
with `storage.database_url` on the test PostgreSQL server; these tests speak
docs/PROTOCOL.md to it over real sockets and read the rows back from PostgreSQL.
"""

from __future__ import annotations

import re

import pytest
from service_users import PASSWORD
from sqlalchemy import select
from wire_client import Conn

from serve_app.storage import Database
from serve_app.storage.models import GlbFile, User

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

HASH_NAME = re.compile(r"^[0-9a-f]{64}\.glb$")


def rows_in_postgres(service, hashed_name: str) -> tuple[GlbFile | None, User | None, str]:
    """The GLB row of `hashed_name`, its owner's row, and the dialect they were read with."""
    db = Database(service.database_url)
    try:
        with db.session() as session:
            glb = session.scalar(select(GlbFile).where(GlbFile.hashed_name == hashed_name))
            owner = session.get(User, glb.user_id) if glb is not None else None
        return glb, owner, db.engine.dialect.name
    finally:
        db.dispose()


def test_login_images_get_glb_and_list_store_their_rows_in_postgres(postgres_service, jpegs):
    service = postgres_service
    with Conn(service.port) as c:
        assert c.login("alice", "wrong password")[:2] == [False, False]
        assert c.login("alice", PASSWORD)[:2] == [True, False]
        reply = c.images(jpegs)
        assert reply.error is None, reply.data[:100]
        assert HASH_NAME.match(reply.name) and reply.data[:4] == b"glTF"
        hashed = reply.name[:-4]
        assert c.get_glb(hashed) == reply.data
        listed = c.list()
    assert [entry["hash"] for entry in listed] == [hashed]
    assert listed[0]["original_name"] == "images:3" and listed[0]["file_size"] == len(reply.data)

    glb, owner, dialect = rows_in_postgres(service, hashed)
    assert dialect == "postgresql"
    assert glb is not None and owner is not None and owner.username == "alice"
    assert glb.file_size == len(reply.data) and glb.source_digest is not None
    assert (service.storage_root / glb.file_path).read_bytes() == reply.data


def test_the_hash_is_the_share_link_and_list_stays_private(postgres_service, jpegs):
    service = postgres_service
    with Conn(service.port) as c:
        assert c.login("carol", PASSWORD)[0] is True
        reply = c.images(jpegs[:2])
        hashed = reply.name[:-4]
    with Conn(service.port) as anyone:  # no login: the hash alone fetches it
        assert anyone.get_glb(f"{hashed}.glb") == reply.data
        assert anyone.get_glb("0" * 64) == b"ERROR_HASH_NOT_FOUND"
    with Conn(service.port) as other:
        assert other.login("vip", PASSWORD)[:2] == [True, True]
        assert other.list() == []  # carol's GLB is not listed to anyone else
    glb, owner, _ = rows_in_postgres(service, hashed)
    assert owner.username == "carol" and glb.original_name == "images:2"
