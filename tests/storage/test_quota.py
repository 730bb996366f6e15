"""Per-user quotas on stored results: refused or evicted at save time, atomically per user, and checked early."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from serve_app.config import StorageSettings
from serve_app.storage import GlbStore, check_storage
from serve_app.storage.models import GlbFile
from serve_app.storage.quota import Quota, QuotaGate
from tcp_proxy.errors import HashNotFoundError, QuotaExceededError

GLB = b"glTF" + b"\x00" * 96  # 100 bytes


def rows_of(db, user_id) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(GlbFile).where(GlbFile.user_id == user_id))


def quota_store(db, root, **limits) -> GlbStore:
    return GlbStore(db, root, quota=Quota(**limits))


def test_no_limit_means_no_quota():
    assert Quota.of(StorageSettings()) is None
    assert Quota.of(StorageSettings(max_bytes_per_user=10)) == Quota(None, 10, "refuse")
    assert QuotaGate.open(StorageSettings()) is None
    assert QuotaGate.open(StorageSettings(max_results_per_user=1, quota_policy="evict_oldest")) is None


@pytest.mark.parametrize("limits", [{"max_results": 2}, {"max_bytes": 250}, {"max_bytes": 200}])
def test_refuse_at_the_limit_stores_nothing(db, root, user_id, users, limits):
    store = quota_store(db, root, **limits)
    kept = [store.save(GLB, user_id, "a.jpg"), store.save(GLB, user_id, "b.jpg")]  # at the limit: both fit
    with pytest.raises(QuotaExceededError, match="quota exceeded"):
        store.save(GLB, user_id, "c.jpg")
    assert rows_of(db, user_id) == 2 and sorted(f.key for f in root.list_out()) == sorted(r.key for r in kept)
    store.save(GLB, users.create("other", "pw").id, "d.jpg")  # another user's quota is their own


def test_refuse_checks_bytes_with_the_new_result(db, root, user_id):
    store = quota_store(db, root, max_bytes=250)
    store.save(GLB, user_id, "a.jpg")
    with pytest.raises(QuotaExceededError, match="100 bytes stored and 151 more"):
        store.save(b"glTF" + b"\x00" * 147, user_id, "big.jpg")
    store.save(b"glTF" + b"\x00" * 146, user_id, "just.jpg")  # 250 in all: at the limit
    assert rows_of(db, user_id) == 2


def test_evict_oldest_makes_room_by_count(db, root, user_id):
    store = quota_store(db, root, max_results=2, policy="evict_oldest")
    first, second = store.save(GLB, user_id, "a.jpg"), store.save(GLB, user_id, "b.jpg")
    third = store.save(GLB, user_id, "c.jpg")
    assert rows_of(db, user_id) == 2 and not root.is_file(first.key)
    with pytest.raises(HashNotFoundError):
        store.open(first.hashed_name)
    assert store.read(second.hashed_name) == GLB and store.read(third.hashed_name) == GLB
    assert check_storage(db, root, min_age_s=0).consistent


def test_evict_oldest_makes_room_by_bytes_and_refuses_what_never_fits(db, root, user_id):
    store = quota_store(db, root, max_bytes=300, policy="evict_oldest")
    saved = [store.save(GLB, user_id, f"{i}.jpg") for i in range(3)]
    big = store.save(b"glTF" + b"\x00" * 196, user_id, "big.jpg")  # 200 bytes: the two oldest go
    assert sorted(f.key for f in root.list_out()) == sorted([saved[2].key, big.key])
    with pytest.raises(QuotaExceededError, match="over the 300 bytes allowed"):
        store.save(b"glTF" + b"\x00" * 297, user_id, "huge.jpg")
    assert rows_of(db, user_id) == 2  # nothing evicted for a result that could never fit


def test_the_early_check_refuses_a_user_at_a_limit(db, root, user_id, database_url):
    store = quota_store(db, root, max_results=1)
    gate = QuotaGate.open(StorageSettings(database_url=database_url, max_results_per_user=1))
    try:
        gate.check_room(user_id)  # room for one
        store.save(GLB, user_id, "a.jpg")
        with pytest.raises(QuotaExceededError, match="1 stored results, at most 1"):
            gate.check_room(user_id)
    finally:
        gate.close()
    by_bytes = QuotaGate.open(StorageSettings(database_url=database_url, max_bytes_per_user=100))
    try:
        with pytest.raises(QuotaExceededError, match="100 bytes stored, at most 100"):
            by_bytes.check_room(user_id)  # no room for even one byte more
    finally:
        by_bytes.close()


@pytest.mark.parametrize("policy", ["refuse", "evict_oldest"])
def test_concurrent_saves_of_one_user_never_overshoot(db, root, user_id, policy):
    store = quota_store(db, root, max_results=3, policy=policy)
    outcomes: list[object] = []
    start = threading.Barrier(8)

    def save(i: int) -> None:
        start.wait()
        try:
            outcomes.append(store.save(GLB, user_id, f"{i}.jpg"))
        except QuotaExceededError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    refused = [o for o in outcomes if isinstance(o, QuotaExceededError)]
    assert len(outcomes) == 8 and len(refused) == (5 if policy == "refuse" else 0)
    assert rows_of(db, user_id) == 3
    assert len(root.list_out()) == 3 and check_storage(db, root, min_age_s=0).consistent
