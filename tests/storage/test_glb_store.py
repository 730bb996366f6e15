import os
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tcp_proxy.errors import FileMissingError, HashNotFoundError, InvalidHashError
from serve_app.storage import GlbStore, StoredGlb
from serve_app.storage.models import GlbFile

GLB = b"glTF\x02\x00\x00\x00" + bytes(range(256)) * 4


def all_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def stored_keys(root):
    """Every file under the root's out/, temp files included."""
    return sorted(found.key for found in root.list_out())


def row_count(db):
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(GlbFile))


def test_save_writes_the_file_and_its_row(store, db, storage_root, user_id):
    saved = store.save(GLB, user_id, "photos.jpg", is_public=True)
    day = datetime.now(timezone.utc).date().isoformat()
    assert isinstance(saved, StoredGlb) and saved.file_size == len(GLB)
    assert saved.file_path == storage_root.resolve() / "out" / day / f"{saved.hashed_name}.glb"
    assert saved.file_path.read_bytes() == GLB
    assert all_files(storage_root) == [f"out/{day}/{saved.hashed_name}.glb"]  # no temp file left
    with db.session() as session:
        row = session.scalar(select(GlbFile))
    assert (row.hashed_name, row.original_name, row.user_id, row.file_size, row.is_public) == (
        saved.hashed_name,
        "photos.jpg",
        user_id,
        len(GLB),
        True,
    )
    assert row.file_path == f"out/{day}/{saved.hashed_name}.glb"  # relative to the storage root


def test_read_accepts_what_a_user_types(any_store, root, user_id):
    saved = any_store.save(GLB, user_id, "clip.mp4")
    day = datetime.now(timezone.utc).date().isoformat()
    assert saved.key == f"out/{day}/{saved.hashed_name}.glb" and stored_keys(root) == [saved.key]
    assert any_store.read(saved.hashed_name) == GLB
    assert any_store.read(f"  {saved.hashed_name}.glb\n") == GLB
    assert any_store.locate(saved.hashed_name) == saved.key


def test_path_for_is_the_local_file(store, user_id):
    saved = store.save(GLB, user_id, "clip.mp4")
    assert store.path_for(saved.hashed_name) == saved.file_path


def test_each_save_gets_a_new_random_hash(any_store, user_id):
    names = {any_store.save(GLB, user_id, "a.jpg").hashed_name for _ in range(5)}
    assert len(names) == 5


def test_store_keeps_working_when_the_working_directory_changes(db, storage_root, user_id, monkeypatch, tmp_path):
    monkeypatch.chdir(storage_root)
    store = GlbStore(db, ".")
    saved = store.save(GLB, user_id, "a.jpg")
    monkeypatch.chdir(tmp_path)
    assert store.read(saved.hashed_name) == GLB


def test_failing_commit_leaves_no_file_and_no_row(any_store, db, root, user_id, monkeypatch):
    def failing_commit(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Session, "commit", failing_commit)
    with pytest.raises(RuntimeError, match="disk full"):
        any_store.save(GLB, user_id, "a.jpg")
    monkeypatch.undo()
    assert row_count(db) == 0
    assert stored_keys(root) == []


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failing_write_leaves_no_file_and_no_row(store, db, storage_root, user_id, monkeypatch, failing):
    def fail(*_args, **_kwargs):
        raise OSError("I/O error")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="I/O error"):
        store.save(GLB, user_id, "a.jpg")
    monkeypatch.undo()
    assert row_count(db) == 0
    assert all_files(storage_root) == []


def test_unknown_user_id_is_refused_and_leaves_nothing(any_store, db, root):
    with pytest.raises(IntegrityError):  # foreign keys are enforced on SQLite too
        any_store.save(GLB, 999, "a.jpg")
    assert row_count(db) == 0
    assert stored_keys(root) == []


def test_unknown_hash_is_not_found(any_store):
    with pytest.raises(HashNotFoundError) as raised:
        any_store.read("a" * 64)
    assert raised.value.code == "ERROR_HASH_NOT_FOUND"


def test_row_without_file_is_file_missing(any_store, root, user_id):
    saved = any_store.save(GLB, user_id, "a.jpg")
    root.delete(saved.key)
    for lookup in (any_store.read, any_store.open, any_store.locate):
        with pytest.raises(FileMissingError) as raised:
            lookup(saved.hashed_name)
        assert raised.value.code == "ERROR_FILE_MISSING"


@pytest.mark.parametrize("typed", ["../../etc/passwd", "A" * 64, "a" * 63, "a" * 65, "a" * 64 + "/..", ""])
def test_invalid_hash_is_refused_before_any_lookup(store, typed):
    with pytest.raises(InvalidHashError):
        store.read(typed)
    with pytest.raises(InvalidHashError):
        store.path_for(typed)


def insert_row(db, hashed_name, file_path, user_id):
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO glb_files (hashed_name, file_path, user_id) VALUES (:h, :p, :u)"),
            {"h": hashed_name, "p": file_path, "u": user_id},
        )


def test_row_pointing_outside_the_root_is_never_read(any_store, db, root, user_id, tmp_path):
    secret = tmp_path / "secret.glb"
    secret.write_bytes(b"not yours")
    if root.local_path("x") is None:  # a bucket: the secret beside the root's prefix
        root.fs.pipe_file(root.location.rsplit("/", 1)[0] + "/secret.glb", b"not yours")
    insert_row(db, "1" * 64, "../secret.glb", user_id)
    insert_row(db, "2" * 64, str(secret), user_id)
    insert_row(db, "3" * 64, "out/../../secret.glb", user_id)
    insert_row(db, "4" * 64, ".", user_id)
    for hashed_name in ("1" * 64, "2" * 64, "3" * 64, "4" * 64):
        with pytest.raises(FileMissingError):
            any_store.read(hashed_name)


def test_symlink_leading_outside_the_root_is_never_followed(store, db, storage_root, user_id, tmp_path):
    secret = tmp_path / "secret.glb"
    secret.write_bytes(b"not yours")
    link = storage_root / "out" / "2024-01-01" / ("5" * 64 + ".glb")
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    insert_row(db, "5" * 64, "out/2024-01-01/" + "5" * 64 + ".glb", user_id)
    with pytest.raises(FileMissingError):
        store.read("5" * 64)


def test_legacy_absolute_path_inside_the_root_is_read(store, db, storage_root, user_id):
    path = storage_root / "out" / "2024-01-01" / ("6" * 64 + ".glb")
    path.parent.mkdir(parents=True)
    path.write_bytes(GLB)
    insert_row(db, "6" * 64, str(path), user_id)
    assert store.read("6" * 64) == GLB


@pytest.mark.parametrize("stored_path", ["out/\x00/x.glb", "out/loop.glb"])
def test_unresolvable_stored_path_is_file_missing(store, db, storage_root, user_id, stored_path):
    if "\x00" in stored_path and db.engine.dialect.name == "postgresql":
        pytest.skip("PostgreSQL text cannot hold NUL, so no such row can exist there")
    loop = storage_root / "out" / "loop.glb"
    loop.parent.mkdir(parents=True, exist_ok=True)
    if not loop.is_symlink():
        loop.symlink_to(loop)
    insert_row(db, "7" * 64, stored_path, user_id)
    with pytest.raises(FileMissingError):
        store.read("7" * 64)


def test_list_for_user_newest_first_bounded_and_private(any_store, db, users, user_id):
    store = any_store
    other = users.create("other", "other-password").id
    saved = [store.save(GLB, user_id, f"upload {i}") for i in range(3)]
    store.save(GLB, other, "not yours")
    with db.session() as session:  # created_at decides the order, not the insertion order
        session.execute(
            text("UPDATE glb_files SET created_at = :t WHERE hashed_name = :h"),
            {"t": datetime(2020, 1, 1), "h": saved[2].hashed_name},
        )
    listed = store.list_for_user(user_id, 10)
    assert [g.hashed_name for g in listed] == [saved[1].hashed_name, saved[0].hashed_name, saved[2].hashed_name]
    assert listed[0].original_name == "upload 1" and listed[0].file_size == len(GLB)
    assert listed[-1].created_at == datetime(2020, 1, 1)
    assert [g.hashed_name for g in store.list_for_user(user_id, 1)] == [saved[1].hashed_name]
    assert store.list_for_user(user_id + 999, 10) == []


def test_find_by_digest_is_per_user_and_needs_the_file(any_store, root, users, user_id):
    store = any_store
    other = users.create("someone", "pw").id
    digest = "d" * 64
    assert store.find_by_digest(user_id, digest) is None
    older = store.save(GLB, user_id, "a", source_digest=digest)
    newer = store.save(GLB, user_id, "b", source_digest=digest)
    store.save(GLB, user_id, "c", source_digest="e" * 64)
    assert store.find_by_digest(user_id, digest) == newer.hashed_name
    assert store.find_by_digest(other, digest) is None  # never another user's result
    root.delete(newer.key)
    assert store.find_by_digest(user_id, digest) == older.hashed_name  # a GLB whose file is gone is skipped


def test_only_glb_files_under_out_are_served(any_store, db, root, user_id):
    """A row may point inside the root and still never reach the database or any other file there."""
    store = any_store
    root.write("vggt_app.db", b"SQLite format 3\x00")
    root.write("notes.glb", b"glTF but outside out/")
    root.write("out/2026-01-01/x.txt", b"not a GLB")
    cases = {"5" * 64: "vggt_app.db", "6" * 64: "notes.glb", "7" * 64: "out/2026-01-01/x.txt", "8" * 64: "out"}
    for hashed_name, path in cases.items():
        insert_row(db, hashed_name, path, user_id)
        with pytest.raises(FileMissingError, match="not a GLB under"):
            store.read(hashed_name)
    saved = store.save(GLB, user_id, "fine")
    assert store.read(saved.hashed_name) == GLB
