"""Stored predictions: the file's arrays, saved beside the GLB, found, expired, deleted with their result,
counted in the quota and known to the consistency check; on a folder and a bucket, SQLite and PostgreSQL."""

from __future__ import annotations

import io
import os
import time
import zipfile
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, update

from devkit.reexport_bench import synthetic_predictions
from serve_app.config import StorageSettings
from serve_app.storage import GlbStore, check_storage, repair_storage
from serve_app.storage import predictions as stored
from serve_app.storage.deletions import pending_deletions, predictions_key
from serve_app.storage.lifecycle import ExpiryTimer, ResultLifecycle
from serve_app.storage.models import GlbFile, utcnow
from serve_app.storage.quota import Quota
from tcp_proxy.errors import HashNotFoundError, QuotaExceededError

NPZ = b"PK stands in for the npz bytes"


@pytest.fixture(scope="module")
def arrays():
    return synthetic_predictions(3, 12, 16)


def predictions_size(db, hashed_name: str) -> int | None:
    with db.session() as session:
        return session.scalar(select(GlbFile.predictions_size).where(GlbFile.hashed_name == hashed_name))


def age(db, hashed_name: str, **delta) -> None:
    with db.session() as session:
        session.execute(
            update(GlbFile).where(GlbFile.hashed_name == hashed_name).values(created_at=utcnow() - timedelta(**delta))
        )


# the file's arrays


def test_the_key_is_the_glb_key_with_npz():
    assert predictions_key("out/2024-01-01/" + "a" * 64 + ".glb") == "out/2024-01-01/" + "a" * 64 + ".npz"
    assert predictions_key("out/2024-01-01/notes.txt") is None


def test_every_byte_of_colour_comes_back_as_the_byte_the_export_reads():
    every_byte = np.arange(256, dtype=np.uint8).reshape(1, 1, 1, 256)
    assert np.array_equal(stored.colors_of(stored.images_of(every_byte)), every_byte)
    assert np.array_equal((stored.images_of(every_byte) * 255).astype(np.uint8), every_byte)


def test_points_and_confidences_come_back_exactly_and_colours_as_bytes(arrays):
    loaded = stored.load(stored.pack(arrays), "pointmap")
    for key in ("world_points", "world_points_conf", "extrinsic"):
        assert loaded[key].dtype == np.float32 and np.array_equal(loaded[key], arrays[key]), key
    assert np.array_equal(stored.colors_of(loaded["images"]), stored.colors_of(arrays["images"]))
    assert "depth_conf" not in loaded  # only what the pointmap export reads


def test_the_depth_source_recomputes_the_unprojected_points_to_the_same_floats(arrays):
    loaded = stored.load(stored.pack(arrays), "depth")
    assert np.array_equal(loaded["world_points_from_depth"], arrays["world_points_from_depth"])
    assert np.array_equal(loaded["depth_conf"], arrays["depth_conf"])


def test_only_what_an_export_reads_is_kept_and_float16_only_where_exact(arrays):
    exact_halves = dict(arrays, world_points_conf=np.full(arrays["world_points_conf"].shape, 2.5, np.float32))
    with np.load(io.BytesIO(stored.pack(exact_halves))) as npz:
        assert set(npz.files) == {
            "format", "world_points", "world_points_conf", "depth", "depth_conf", "extrinsic", "intrinsic", "colors",
        }
        assert npz["world_points_conf"].dtype == np.float16  # 2.5 is exact in float16
        assert npz["world_points"].dtype == np.float32  # real outputs are not
        assert npz["colors"].dtype == np.uint8 and npz["depth"].shape == arrays["depth"].shape[:3]


def test_an_array_inexact_in_float16_only_past_its_first_values_stays_float32():
    conf = np.full((2, 60, 80), 2.5, np.float32)
    conf.reshape(-1)[stored.HALF_PROBE + 1] = 2.5001  # past the first values looked at
    with np.load(io.BytesIO(stored.pack({"world_points_conf": conf}))) as npz:
        assert npz["world_points_conf"].dtype == np.float32 and np.array_equal(npz["world_points_conf"], conf)


def test_every_member_is_stored_not_deflated(arrays):
    """Even flat colours, which deflate to almost nothing: the file is a short-lived cache and the export
    replica's CPU is what a request costs (see the module docstring)."""
    flat = dict(arrays, images=np.zeros_like(arrays["images"]))
    packed = stored.pack(flat)
    with zipfile.ZipFile(io.BytesIO(packed)) as archive:
        members = archive.infolist()
        assert archive.testzip() is None  # every member's CRC checks
    assert {info.compress_type for info in members} == {zipfile.ZIP_STORED}
    assert all(info.compress_size == info.file_size for info in members)
    assert len(packed) > sum(info.file_size for info in members)  # the members' bytes are all there, as is
    with np.load(io.BytesIO(packed)) as npz:
        assert np.array_equal(npz["colors"], stored.colors_of(flat["images"]))


# saved, found


def test_saved_beside_the_glb_with_their_size_in_the_row(any_store, db, root, user_id):
    saved = any_store.save(b"glTF", user_id, "a.jpg", predictions=NPZ)
    file, size = root.open(predictions_key(saved.key))
    with file:
        assert file.read() == NPZ and size == len(NPZ)
    assert predictions_size(db, saved.hashed_name) == len(NPZ)
    assert stored.find(db, root, user_id, saved.hashed_name).key == predictions_key(saved.key)


def test_a_result_without_predictions_has_none(store, db, user_id):
    saved = store.save(b"glTF", user_id, "a.jpg")
    assert predictions_size(db, saved.hashed_name) is None
    assert stored.find(db, store.root, user_id, saved.hashed_name) is None


def test_another_users_or_a_malformed_hash_is_not_found(store, db, users, user_id):
    saved = store.save(b"glTF", user_id, "a.jpg", predictions=NPZ)
    other = users.create("other", "other-password").id
    for user, text in ((other, saved.hashed_name), (user_id, "not a hash"), (user_id, "f" * 64)):
        with pytest.raises(HashNotFoundError):
            stored.find(db, store.root, user, text)


def test_predictions_that_cannot_be_written_do_not_fail_the_save(store, db, user_id, caplog):
    original = store.root.write

    def refusing_npz(key, data):
        if key.endswith(".npz"):
            raise OSError("disk full")
        original(key, data)

    store.root.write = refusing_npz
    saved = store.save(b"glTF", user_id, "a.jpg", predictions=NPZ)
    assert store.read(saved.hashed_name) == b"glTF" and predictions_size(db, saved.hashed_name) is None
    assert "could not store the predictions" in caplog.text


def test_a_failed_save_leaves_no_predictions(store, storage_root, user_id):
    original = store.root.write

    def stopped_after_npz(key, data):
        original(key, data)
        if key.endswith(".npz"):
            raise KeyboardInterrupt  # stopped right after the predictions were written

    store.root.write = stopped_after_npz
    with pytest.raises(KeyboardInterrupt):
        store.save(b"glTF", user_id, "a.jpg", predictions=NPZ)
    assert [p for p in storage_root.rglob("*") if p.is_file() and p.suffix != ".db"] == []


# lifecycle


def test_every_delete_path_deletes_them_with_the_glb(any_store, db, root, users, user_id):
    lifecycle = ResultLifecycle(db, root)
    deleted = any_store.save(b"glTF 1", user_id, "a.jpg", predictions=NPZ)
    expired = any_store.save(b"glTF 2", user_id, "b.jpg", predictions=NPZ)
    age(db, expired.hashed_name, days=10)
    lifecycle.delete([deleted.hashed_name])
    lifecycle.expire(5)
    for gone in (deleted, expired):
        assert not root.is_file(predictions_key(gone.key)) and not root.is_file(gone.key)

    other = users.create("other", "other-password").id
    theirs = any_store.save(b"glTF 3", other, "c.jpg", predictions=NPZ)
    lifecycle.delete_user("other")
    assert not root.is_file(predictions_key(theirs.key))

    evicting = GlbStore(db, root, quota=Quota(max_results=1, policy="evict_oldest"))
    oldest = evicting.save(b"glTF 4", user_id, "d.jpg", predictions=NPZ)
    newest = evicting.save(b"glTF 5", user_id, "e.jpg", predictions=NPZ)
    assert not root.is_file(predictions_key(oldest.key)) and root.is_file(predictions_key(newest.key))
    assert check_storage(db, root, min_age_s=0).consistent


def test_expiry_deletes_old_predictions_and_keeps_their_glb(any_store, db, root, user_id):
    old = any_store.save(b"glTF old", user_id, "a.jpg", predictions=NPZ)
    new = any_store.save(b"glTF new", user_id, "b.jpg", predictions=NPZ)
    age(db, old.hashed_name, seconds=120)
    settings = StorageSettings(database_url="sqlite://", predictions_ttl_s=60)

    done = ExpiryTimer(settings).run_once(ResultLifecycle(db, root))

    assert done.files == [predictions_key(old.key)] and done.hashes == []
    assert not root.is_file(predictions_key(old.key)) and predictions_size(db, old.hashed_name) is None
    assert any_store.read(old.hashed_name) == b"glTF old"
    assert root.is_file(predictions_key(new.key)) and predictions_size(db, new.hashed_name) == len(NPZ)
    assert check_storage(db, root, min_age_s=0).consistent


def test_a_ttl_of_zero_expires_every_stored_one(store, db, user_id):
    saved = store.save(b"glTF", user_id, "a.jpg", predictions=NPZ)
    age(db, saved.hashed_name, seconds=1)
    ExpiryTimer(StorageSettings(database_url="sqlite://", predictions_ttl_s=0)).run_once(ResultLifecycle(db, store.root))
    assert predictions_size(db, saved.hashed_name) is None


def test_an_expiry_stopped_between_row_and_file_leaves_the_file_queued_then_deleted(store, db, user_id):
    saved = store.save(b"glTF", user_id, "a.jpg", predictions=NPZ)
    age(db, saved.hashed_name, days=8)
    lifecycle = ResultLifecycle(db, store.root)
    original = store.root.delete
    store.root.delete = lambda key: (_ for _ in ()).throw(OSError("bucket unreachable"))
    assert lifecycle.expire_predictions(604800) == []
    key = predictions_key(saved.key)
    assert predictions_size(db, saved.hashed_name) is None and pending_deletions(db) == [key]
    report = check_storage(db, store.root, min_age_s=0)
    assert report.consistent and report.awaiting_deletion == [key]
    store.root.delete = original
    assert lifecycle.sweep() == [key] and not store.root.is_file(key)


# quota and consistency


def test_the_quota_counts_them(store, db, user_id):
    limited = GlbStore(db, store.root, quota=Quota(max_bytes=len(b"glTF") + len(NPZ)))
    limited.save(b"glTF", user_id, "a.jpg", predictions=NPZ)  # exactly the limit
    with pytest.raises(QuotaExceededError):
        limited.save(b"g", user_id, "b.jpg")
    with pytest.raises(QuotaExceededError, match="over the"):
        GlbStore(db, store.root, quota=Quota(max_bytes=len(NPZ))).save(b"glTF", user_id, "c.jpg", predictions=NPZ)


def test_orphan_predictions_are_reported_and_repaired(any_store, db, root, user_id):
    kept = any_store.save(b"glTF", user_id, "a.jpg", predictions=NPZ)
    uncounted = any_store.save(b"glTF 2", user_id, "b.jpg", predictions=NPZ)
    with db.session() as session:  # the row no longer counts them, nothing queued them
        session.execute(update(GlbFile).where(GlbFile.hashed_name == uncounted.hashed_name).values(predictions_size=None))
    orphan = "out/2024-01-01/" + "e" * 64 + ".npz"
    root.write(orphan, NPZ)
    if root.local_path(orphan) is not None:
        old = time.time() - 3600
        os.utime(root.local_path(orphan), (old, old))

    report = check_storage(db, root, min_age_s=0)
    assert report.files_without_rows == sorted([orphan, predictions_key(uncounted.key)])
    repair_storage(db, report)
    assert not root.is_file(orphan) and root.is_file(predictions_key(kept.key))
    assert check_storage(db, root, min_age_s=0).consistent
