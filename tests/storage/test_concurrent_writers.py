"""Several threads writing one database at once: users and GLB rows stay whole and unique."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

import serve_app.storage.glb_store as glb_store_module
from serve_app.storage import UserExistsError
from serve_app.storage.models import GlbFile

WRITERS = 6


def run_at_once(action, count: int = WRITERS) -> list:
    """Call `action(i)` in `count` threads released together; each thread's result or exception, in order."""
    start = threading.Barrier(count)
    outcomes: list = [None] * count

    def worker(index: int) -> None:
        start.wait(timeout=30)
        try:
            outcomes[index] = action(index)
        except Exception as exc:  # noqa: BLE001 - the test looks at it
            outcomes[index] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def test_one_username_claimed_at_once_has_exactly_one_winner(users):
    outcomes = run_at_once(lambda i: users.create("alice", f"password-{i}"))
    winners = [(i, o) for i, o in enumerate(outcomes) if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, UserExistsError) for o in losers), losers
    index, created = winners[0]
    assert [row["username"] for row in users.list()] == ["alice"]
    assert users.authenticate("alice", f"password-{index}") == created


def test_different_users_created_at_once_all_get_their_own_id(users):
    outcomes = run_at_once(lambda i: users.create(f"user-{i}", "pw"))
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert len({o.id for o in outcomes}) == WRITERS
    assert sorted(row["username"] for row in users.list()) == sorted(f"user-{i}" for i in range(WRITERS))


def test_glbs_saved_at_once_each_keep_their_row_and_bytes(store, db, user_id):
    outcomes = run_at_once(lambda i: store.save(f"glTF {i}".encode(), user_id, f"upload {i}"))
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert len({o.hashed_name for o in outcomes}) == WRITERS
    for i, saved in enumerate(outcomes):
        assert store.read(saved.hashed_name) == f"glTF {i}".encode()
    listed = store.list_for_user(user_id, 100)
    assert sorted(g.original_name for g in listed) == sorted(f"upload {i}" for i in range(WRITERS))


def test_a_hash_collision_fails_one_save_and_never_touches_the_stored_glb(store, db, user_id, monkeypatch):
    taken = "c" * 64
    monkeypatch.setattr(glb_store_module, "new_hashed_name", lambda: taken)
    outcomes = run_at_once(lambda i: store.save(f"glTF {i}".encode(), user_id, f"upload {i}"), count=4)
    winners = [(i, o) for i, o in enumerate(outcomes) if not isinstance(o, Exception)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, IntegrityError) for o in outcomes if isinstance(o, Exception)), outcomes
    index, saved = winners[0]
    assert store.read(taken) == f"glTF {index}".encode()  # a losing save neither overwrote nor deleted it
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(GlbFile)) == 1
    assert [p.name for p in saved.file_path.parent.iterdir()] == [f"{taken}.glb"]  # no temp files left


@pytest.mark.parametrize("name, stored", [("x" * 300, "x" * 255), ("clip\x00.mp4", "clip.mp4")])
def test_original_names_the_column_cannot_hold_are_cut_to_fit(store, user_id, name, stored):
    saved = store.save(b"glTF", user_id, name)
    assert [g.original_name for g in store.list_for_user(user_id, 10)] == [stored]
    assert store.read(saved.hashed_name) == b"glTF"
