"""Deleting and expiring stored results, and deleting users, on a folder and a bucket, SQLite and PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from serve_app.config import StorageSettings
from serve_app.storage import check_storage
from serve_app.storage.deletions import pending_deletions
from serve_app.storage.lifecycle import (
    ExpiryTimer,
    ResultLifecycle,
    UnknownResultsError,
)
from serve_app.storage.models import (
    AddressSession,
    GlbDeletion,
    GlbFile,
    LoginAddress,
    LoginFailure,
    LoginLockout,
    User,
    utcnow,
)
from serve_app.storage.sessions import AddressSessions
from tcp_proxy.errors import HashNotFoundError, InvalidHashError


@pytest.fixture
def lifecycle(db, root):
    return ResultLifecycle(db, root)


def age_days(db, hashed_name: str, days: float) -> None:
    with db.session() as session:
        session.execute(
            update(GlbFile).where(GlbFile.hashed_name == hashed_name).values(created_at=utcnow() - timedelta(days=days))
        )


def rows(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(GlbFile))


def test_delete_removes_row_then_file_and_the_hash_is_then_unknown(any_store, lifecycle, db, root, user_id):
    gone = any_store.save(b"glTF gone", user_id, "a.jpg")
    kept = any_store.save(b"glTF kept", user_id, "b.jpg")

    deleted = lifecycle.delete([f"  {gone.hashed_name}.glb\n"])

    assert deleted.hashes == [gone.hashed_name] and deleted.files == [gone.key]
    assert not root.is_file(gone.key) and root.is_file(kept.key)
    with pytest.raises(HashNotFoundError):  # what GET_GLB answers and the share page turns into a 404
        any_store.open(gone.hashed_name)
    assert any_store.read(kept.hashed_name) == b"glTF kept"
    assert pending_deletions(db) == [] and check_storage(db, root, min_age_s=0).consistent


def test_delete_of_an_unknown_or_malformed_hash_deletes_nothing(any_store, lifecycle, db, root, user_id):
    kept = any_store.save(b"glTF kept", user_id, "a.jpg")
    with pytest.raises(UnknownResultsError, match="ab" * 32):
        lifecycle.delete([kept.hashed_name, "ab" * 32])
    with pytest.raises(InvalidHashError):
        lifecycle.delete([kept.hashed_name, "not-a-hash"])
    assert rows(db) == 1 and root.is_file(kept.key)


def test_a_file_two_rows_share_goes_with_the_last_row(any_store, lifecycle, db, root, users, user_id):
    first = any_store.save(b"glTF shared", user_id, "a.jpg")
    other = users.create("other", "pw").id
    with db.session() as session:  # a second user's row on the same file
        session.add(GlbFile(hashed_name="cd" * 32, file_path=first.key, user_id=other, file_size=11))

    assert lifecycle.delete([first.hashed_name]).files == []
    assert root.is_file(first.key) and any_store.read("cd" * 32) == b"glTF shared"
    assert lifecycle.delete(["cd" * 32]).files == [first.key]
    assert not root.is_file(first.key) and rows(db) == 0


def test_expire_takes_the_oldest_first_in_bounded_batches(any_store, lifecycle, db, root, user_id):
    saved = [any_store.save(f"glTF {i}".encode(), user_id, f"{i}.jpg") for i in range(4)]
    for days, result in zip((40, 35, 31, 29), saved):
        age_days(db, result.hashed_name, days)
    fresh = saved[3]

    dry = lifecycle.expire(30, dry_run=True)
    assert dry.hashes == [r.hashed_name for r in saved[:3]] and dry.files == [] and rows(db) == 4

    first = lifecycle.expire(30, limit=2)
    assert first.hashes == [saved[0].hashed_name, saved[1].hashed_name]
    second = lifecycle.expire(30, limit=2)
    assert second.hashes == [saved[2].hashed_name] and second.files == [saved[2].key]
    assert lifecycle.expire(30, limit=2).hashes == []
    assert [r.hashed_name for r in lifecycle.list()] == [fresh.hashed_name]
    assert [found.key for found in root.list_out()] == [fresh.key]


def test_expire_compares_creation_times_and_leaves_a_row_without_one(any_store, lifecycle, db, user_id):
    """Rows stored before dates were kept got the upgrade's time (migration 0008, tests/storage/test_migrations.py);
    the service writes one on every row, so an undated row can only come from outside it."""
    legacy = any_store.save(b"glTF legacy", user_id, "a.jpg")
    with db.session() as session:
        session.execute(update(GlbFile).values(created_at=None))
    assert lifecycle.expire(1).hashes == [] and lifecycle.list()[0].hashed_name == legacy.hashed_name


def test_list_shows_owners_and_filters_by_user(any_store, lifecycle, users, user_id):
    mine = any_store.save(b"glTF mine", user_id, "mine.jpg")
    theirs = any_store.save(b"glTF theirs!", users.create("other", "pw").id, "theirs.jpg")
    assert [(r.hashed_name, r.username, r.file_size) for r in lifecycle.list()] == [
        (mine.hashed_name, "owner", 9),
        (theirs.hashed_name, "other", 12),
    ]
    assert [r.original_name for r in lifecycle.list("other")] == ["theirs.jpg"]
    assert lifecycle.list("nobody") == []


def test_delete_user_takes_results_files_sessions_and_throttle_rows(any_store, lifecycle, db, root, users, user_id):
    other_id = users.create("other", "pw").id
    results = [any_store.save(b"glTF a", user_id, "a.jpg"), any_store.save(b"glTF b", user_id, "b.jpg")]
    theirs = any_store.save(b"glTF c", other_id, "c.jpg")
    AddressSessions(db, 3600).bind("10.0.0.1", user_id)
    for _ in range(6):
        users.authenticate("owner", "wrong", "10.0.0.2")  # failures and a lockout keyed by the username
    users.throttle.record_success("owner", "10.0.0.3", user_id)  # a known address

    deleted = lifecycle.delete_user("owner")

    assert sorted(deleted.hashes) == sorted(r.hashed_name for r in results)
    assert sorted(deleted.files) == sorted(r.key for r in results)
    assert not any(root.is_file(r.key) for r in results) and root.is_file(theirs.key)
    with db.session() as session:
        assert session.get(User, user_id) is None
        for table in (AddressSession, LoginAddress):
            assert session.scalar(select(func.count()).select_from(table).where(table.user_id == user_id)) == 0
        for table in (LoginFailure, LoginLockout):
            assert session.scalar(select(func.count()).select_from(table).where(table.key_value == "owner")) == 0
        assert session.scalar(select(func.count()).select_from(LoginFailure)) > 0  # the address's stay
    assert [r.hashed_name for r in lifecycle.list()] == [theirs.hashed_name]
    assert lifecycle.delete_user("owner") is None
    assert check_storage(db, root, min_age_s=0).consistent


def test_a_queued_file_is_consistent_and_the_next_sweep_deletes_it(any_store, lifecycle, db, root, user_id):
    """The state an interrupted deletion leaves (row deleted, file queued, file still there)."""
    result = any_store.save(b"glTF", user_id, "a.jpg")
    with db.session() as session:
        session.execute(GlbFile.__table__.delete())
        session.add(GlbDeletion(file_key=result.key, queued_at=0.0))

    report = check_storage(db, root, min_age_s=0)
    assert report.consistent and report.awaiting_deletion == [result.key] and report.files_without_rows == []

    assert lifecycle.expire(30).files == [result.key]
    assert not root.is_file(result.key) and pending_deletions(db) == []


def test_a_queued_file_stored_again_is_kept(any_store, lifecycle, db, root, user_id):
    result = any_store.save(b"glTF", user_id, "a.jpg")
    with db.session() as session:
        session.add(GlbDeletion(file_key=result.key, queued_at=0.0))
    assert lifecycle.sweep() == []
    assert root.is_file(result.key) and pending_deletions(db) == []


def test_the_timer_round_applies_the_retention(any_store, lifecycle, db, user_id, database_url):
    old, new = any_store.save(b"glTF old", user_id, "a.jpg"), any_store.save(b"glTF new", user_id, "b.jpg")
    age_days(db, old.hashed_name, 8)
    keep_forever = ExpiryTimer(StorageSettings(database_url=database_url))
    assert keep_forever.run_once(lifecycle).hashes == [] and rows(db) == 2
    week = ExpiryTimer(StorageSettings(database_url=database_url, retention_days=7, expire_batch=10))
    assert week.run_once(lifecycle).hashes == [old.hashed_name]
    assert [r.hashed_name for r in lifecycle.list()] == [new.hashed_name]


def test_the_started_timer_expires_on_its_own(request, any_store, lifecycle, db, root, user_id, database_url):
    old, new = any_store.save(b"glTF old", user_id, "a.jpg"), any_store.save(b"glTF new", user_id, "b.jpg")
    age_days(db, old.hashed_name, 8)
    in_bucket = root.local_path(old.key) is None
    endpoint = request.getfixturevalue("s3_server").endpoint_url if in_bucket else ""
    storage = StorageSettings(
        database_url=database_url,
        storage_root=root.location,
        s3_endpoint_url=endpoint,
        retention_days=7,
        expire_every_s=0.05,
    )
    timer = ExpiryTimer.start(storage)
    try:
        deadline = time.monotonic() + 60
        while root.is_file(old.key) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        timer.stop()
    assert not root.is_file(old.key) and [r.hashed_name for r in lifecycle.list()] == [new.hashed_name]
