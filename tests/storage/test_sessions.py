"""Address sessions in the database: absolute expiry, replacement, shared by every process."""

from __future__ import annotations

from sqlalchemy import text

from serve_app.storage import AddressSessions
from clock import Clock


def test_a_binding_ends_ttl_after_the_login_however_often_it_is_read(db, user_id):
    clock = Clock(1_800_000_000.0)
    sessions = AddressSessions(db, ttl_s=60, clock=clock)
    sessions.bind("10.0.0.1", user_id)
    for _ in range(5):
        clock.now += 11
        assert sessions.user_id_at("10.0.0.1") == user_id
    assert sessions.user_id_at("10.0.0.2") is None
    clock.now += 5
    assert sessions.user_id_at("10.0.0.1") is None


def test_bindings_are_seen_by_another_process_and_after_a_restart(db, users, user_id):
    clock = Clock(1_800_000_000.0)
    AddressSessions(db, ttl_s=60, clock=clock).bind("10.0.0.1", user_id)
    other = users.create("other", "pw").id
    replica = AddressSessions(db, ttl_s=60, clock=clock)
    assert replica.user_id_at("10.0.0.1") == user_id
    replica.bind("10.0.0.1", other)  # the latest LOGIN from an address replaces the binding
    assert AddressSessions(db, ttl_s=60, clock=clock).user_id_at("10.0.0.1") == other


def test_expired_bindings_are_purged(db, user_id):
    clock = Clock(1_800_000_000.0)
    sessions = AddressSessions(db, ttl_s=10, clock=clock)
    for i in range(3):
        sessions.bind(f"10.0.0.{i}", user_id)
    clock.now += 11
    sessions.bind("10.0.1.1", user_id)
    assert sessions.live() == 1
    sessions.purge()
    with db.session() as session:
        assert session.execute(text("SELECT COUNT(*) FROM address_sessions")).scalar() == 1


def test_unbind_ends_only_that_users_binding(db, users, user_id):
    sessions = AddressSessions(db, ttl_s=60, clock=Clock(1_800_000_000.0))
    other = users.create("other", "pw").id
    sessions.bind("10.0.0.1", user_id)
    sessions.unbind("10.0.0.1", other)  # rebound meanwhile by someone else: theirs stays
    assert sessions.user_id_at("10.0.0.1") == user_id
    sessions.unbind("10.0.0.1", user_id)
    assert sessions.user_id_at("10.0.0.1") is None
