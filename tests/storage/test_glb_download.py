"""GET_GLB's download: a stored GLB streamed piece by piece from a folder or a bucket, never read whole."""

import asyncio

import pytest

from serve_app.storage import GlbStore
from serve_app.storage.blob_root import FsspecRoot
from tcp_proxy.errors import FileMissingError

GLB = b"glTF" + bytes(range(256)) * 4096  # 1 MiB and 4 bytes
BLOCK = 64 * 1024  # the bucket's read block in these tests
PIECE = 32 * 1024  # what the TCP server asks for each time (it asks for 256 KiB)


async def read_all(download, n):
    pieces = []
    try:
        while piece := await download.read(n):
            assert len(piece) <= n
            pieces.append(piece)
    finally:
        await download.close()
    return pieces


def test_download_streams_the_stored_glb_in_pieces(any_store, user_id):
    saved = any_store.save(GLB, user_id, "big")
    download = any_store.open(f"{saved.hashed_name}.glb")
    assert download.size == len(GLB)
    pieces = asyncio.run(read_all(download, PIECE))
    assert b"".join(pieces) == GLB and len(pieces) == -(-len(GLB) // PIECE)


def test_download_from_a_bucket_fetches_ranges_never_the_whole_object(db, user_id, s3_server, monkeypatch):
    import s3fs.core

    root = FsspecRoot(s3_server.new_bucket_url(), endpoint_url=s3_server.endpoint_url, read_block_size=BLOCK)
    store = GlbStore(db, root)
    saved = store.save(GLB, user_id, "big")
    fetched = []
    real_fetch = s3fs.core.S3File._fetch_range

    def recording_fetch(self, start, end):
        fetched.append(end - start)
        return real_fetch(self, start, end)

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", recording_fetch)
    download = store.open(saved.hashed_name)
    assert b"".join(asyncio.run(read_all(download, PIECE))) == GLB
    assert sum(fetched) == len(GLB)  # each byte fetched once
    assert len(fetched) > 1 and max(fetched) <= PIECE + BLOCK  # one read block (plus the piece asked for) at a time


def test_download_of_a_vanished_object_is_file_missing(db, user_id, s3_server):
    root = FsspecRoot(s3_server.new_bucket_url(), endpoint_url=s3_server.endpoint_url)
    store = GlbStore(db, root)
    saved = store.save(GLB, user_id, "gone")
    root.delete(saved.key)
    with pytest.raises(FileMissingError):
        store.open(saved.hashed_name)
