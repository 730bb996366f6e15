"""Address sessions at their edges: expiry exactly at `ttl_s`, an empty table, unbinding one address of a user,
and the sweep of expired rows every 100 bindings."""

from __future__ import annotations

from sqlalchemy import text

from serve_app.storage import AddressSessions
from clock import Clock


def rows(db) -> int:
    with db.session() as session:
        return session.execute(text("SELECT COUNT(*) FROM address_sessions")).scalar()


def test_no_bindings_count_as_none_live(db):
    assert AddressSessions(db, ttl_s=60, clock=Clock(1_800_000_000.0)).live() == 0


def test_a_binding_expires_exactly_ttl_s_after_its_login(db, user_id):
    clock = Clock(1_800_000_000.0)
    sessions = AddressSessions(db, ttl_s=60, clock=clock)
    sessions.bind("10.0.0.1", user_id)
    clock.now += 60
    assert sessions.user_id_at("10.0.0.1") is None
    assert sessions.live() == 0
    sessions.purge()
    assert rows(db) == 0


def test_unbind_ends_only_that_address(db, user_id):
    sessions = AddressSessions(db, ttl_s=60, clock=Clock(1_800_000_000.0))
    sessions.bind("10.0.0.1", user_id)
    sessions.bind("10.0.0.2", user_id)
    sessions.unbind("10.0.0.1", user_id)
    assert sessions.user_id_at("10.0.0.2") == user_id


def test_expired_bindings_are_swept_every_100_bindings_this_process_makes(db, user_id):
    clock = Clock(1_800_000_000.0)
    sessions = AddressSessions(db, ttl_s=10, clock=clock)
    for cycle in range(2):
        sessions.bind(f"10.9.9.{cycle}", user_id)  # the first of the next 100
        clock.now += 11  # expired, but only a sweep deletes it
        for i in range(98):
            sessions.bind(f"10.1.{cycle}.{i}", user_id)
        assert rows(db) == 99
        sessions.bind(f"10.2.{cycle}.0", user_id)  # the 100th: the sweep deletes the expired one
        assert rows(db) == 99
        clock.now += 11
        sessions.purge()
