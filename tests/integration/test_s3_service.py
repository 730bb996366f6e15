"""The running service with its GLBs in an S3 bucket: LOGIN, IMAGE and GET_GLB over TCP.

The `s3_service` fixture deploys the app (tiny untrained model on CPU) with
`storage.storage_root` on a bucket of the test S3 server (moto) and
`storage.s3_endpoint_url` pointing at it; the row keeps the key relative to
the root, and the object is read back from the bucket itself.
"""

from __future__ import annotations

import re

import pytest
from service_users import PASSWORD
from sqlalchemy import select
from wire_client import Conn

from serve_app.storage import Database
from serve_app.storage.models import GlbFile

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

HASH_NAME = re.compile(r"^[0-9a-f]{64}\.glb$")


def stored_path(service, hashed_name: str) -> str | None:
    """`glb_files.file_path` of `hashed_name`."""
    db = Database(service.database_url)
    try:
        with db.session() as session:
            return session.scalar(select(GlbFile.file_path).where(GlbFile.hashed_name == hashed_name))
    finally:
        db.dispose()


def test_images_are_stored_in_the_bucket_and_get_glb_streams_them_back(s3_service, s3_server, jpegs):
    service, bucket_url = s3_service
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[:2] == [True, False]
        reply = c.images(jpegs)
        assert reply.error is None, reply.data[:100]
        assert HASH_NAME.match(reply.name) and reply.data[:4] == b"glTF"
    hashed = reply.name[:-4]
    with Conn(service.port) as anyone:  # the hash alone fetches it, streamed from the bucket
        assert anyone.get_glb(reply.name) == reply.data
        assert anyone.get_glb("0" * 64) == b"ERROR_HASH_NOT_FOUND"

    file_path = stored_path(service, hashed)
    assert file_path is not None and re.fullmatch(rf"out/\d{{4}}-\d{{2}}-\d{{2}}/{hashed}\.glb", file_path)
    bucket, prefix = bucket_url.removeprefix("s3://").split("/", 1)
    stored = s3_server.client().get_object(Bucket=bucket, Key=f"{prefix}/{file_path}")
    assert stored["Body"].read() == reply.data
