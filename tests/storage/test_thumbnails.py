"""Preview pictures beside their GLBs: saved with them, deleted with them, accounted for by the consistency check."""

from __future__ import annotations

import os
import time

import pytest

from serve_app.storage import check_storage, repair_storage
from serve_app.storage.deletions import thumbnail_key
from serve_app.storage.lifecycle import ResultLifecycle
from tcp_proxy.errors import FileMissingError

JPEG = b"\xff\xd8\xff\xe0 a preview picture \xff\xd9"
ORPHAN_THUMBNAIL = "out/2024-01-01/" + "e" * 64 + ".jpg"


def test_thumbnail_key_is_the_glb_key_with_jpg():
    assert thumbnail_key("out/2024-01-01/" + "a" * 64 + ".glb") == "out/2024-01-01/" + "a" * 64 + ".jpg"
    assert thumbnail_key("out/2024-01-01/notes.txt") is None


def test_saved_beside_the_glb_and_located(any_store, root, user_id):
    stored = any_store.save(b"glTF", user_id, "a.jpg", thumbnail=JPEG)
    key = any_store.locate_thumbnail(stored.hashed_name)
    assert key == thumbnail_key(stored.key)
    file, size = root.open(key)
    with file:
        assert file.read() == JPEG and size == len(JPEG)


def test_a_result_without_one_has_none(any_store, user_id):
    stored = any_store.save(b"glTF", user_id, "a.jpg")
    with pytest.raises(FileMissingError):
        any_store.locate_thumbnail(stored.hashed_name)


def test_deleting_a_result_deletes_its_thumbnail(any_store, db, root, user_id):
    stored = any_store.save(b"glTF", user_id, "a.jpg", thumbnail=JPEG)
    kept = any_store.save(b"glTF kept", user_id, "b.jpg", thumbnail=JPEG)
    ResultLifecycle(db, root).delete([stored.hashed_name])
    assert not root.is_file(stored.key) and not root.is_file(thumbnail_key(stored.key))
    assert root.is_file(thumbnail_key(kept.key))


def test_a_failed_save_leaves_no_thumbnail(store, storage_root, user_id):
    store.save(b"glTF", user_id, "a.jpg")
    original = store.root.write

    def failing_write(key, data):
        original(key, data)
        if key.endswith(".jpg"):
            raise KeyboardInterrupt  # stopped right after the picture was written

    store.root.write = failing_write
    with pytest.raises(KeyboardInterrupt):
        store.save(b"glTF 2", user_id, "b.jpg", thumbnail=JPEG)
    assert sorted(p.suffix for p in storage_root.rglob("*") if p.is_file()) == [".glb"]


def test_a_thumbnail_that_cannot_be_written_does_not_fail_the_save(store, user_id, caplog):
    original = store.root.write

    def refusing_jpegs(key, data):
        if key.endswith(".jpg"):
            raise OSError("disk full")
        original(key, data)

    store.root.write = refusing_jpegs
    stored = store.save(b"glTF", user_id, "a.jpg", thumbnail=JPEG)
    assert store.read(stored.hashed_name) == b"glTF"
    assert "preview picture" in caplog.text


def test_consistency_counts_thumbnails_with_their_glb_and_repairs_orphans(any_store, db, root, user_id):
    stored = any_store.save(b"glTF", user_id, "a.jpg", thumbnail=JPEG)
    root.write(ORPHAN_THUMBNAIL, JPEG)
    if root.local_path(ORPHAN_THUMBNAIL) is not None:
        old = time.time() - 3600
        os.utime(root.local_path(ORPHAN_THUMBNAIL), (old, old))
    report = check_storage(db, root, min_age_s=0)
    assert report.files_without_rows == [ORPHAN_THUMBNAIL]
    repair_storage(db, report)
    assert not root.is_file(ORPHAN_THUMBNAIL)
    assert root.is_file(thumbnail_key(stored.key))
    assert check_storage(db, root, min_age_s=0).consistent


def test_a_thumbnail_whose_glb_row_is_gone_is_an_orphan(any_store, db, root, user_id):
    stored = any_store.save(b"glTF", user_id, "a.jpg", thumbnail=JPEG)
    root.delete(stored.key)  # the GLB vanished: its row is broken, its picture no longer belongs to anything
    report = check_storage(db, root, min_age_s=0)
    assert report.rows_without_files == [stored.hashed_name]
    assert report.files_without_rows == [thumbnail_key(stored.key)]
