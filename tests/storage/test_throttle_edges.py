"""The login throttle at its edges: what a success clears (only the username's own counts and lockout), and
rows pruned exactly when their window or lockout ends."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from serve_app.config import AuthSettings
from serve_app.storage import LoginThrottle
from clock import Clock

SETTINGS = AuthSettings(max_failures=3, failure_window_s=60.0, lockout_s=10.0, known_address_s=100.0)


@pytest.fixture
def clock():
    return Clock(1000.0)


@pytest.fixture
def throttle(db, clock):
    return LoginThrottle(db, SETTINGS, clock=clock)


def count(db, table: str) -> int:
    with db.session() as session:
        return session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar()


def test_a_success_clears_the_usernames_failures_so_the_count_starts_again(throttle, users):
    throttle.record_failure("alice", "10.0.0.1")
    throttle.record_failure("alice", "10.0.0.1")
    throttle.record_success("alice", None, users.create("alice", "pw").id)
    throttle.record_failure("alice", "10.0.0.2")
    assert not throttle.is_blocked("alice", "10.0.0.3")
    throttle.record_failure("bob", "10.0.0.1")  # the address's count was kept: its third failure
    assert throttle.is_blocked(None, "10.0.0.1")


def test_a_success_lifts_only_its_own_usernames_lockout(throttle, users):
    for name in ("a", "b", "c"):
        throttle.record_failure(name, "10.0.0.9")  # the address 10.0.0.9 is locked
    for _ in range(3):
        throttle.record_failure("bob", None)
    throttle.record_success("10.0.0.9", None, users.create("10.0.0.9", "pw").id)  # a username like that address
    throttle.record_success("alice", None, users.create("alice", "pw").id)
    assert throttle.is_blocked(None, "10.0.0.9")
    assert throttle.is_blocked("bob", None)


def test_prune_deletes_rows_exactly_at_the_end_of_their_window(throttle, clock, users, db):
    alice = users.create("alice", "pw").id
    throttle.record_success("alice", "10.0.0.1", alice)
    for _ in range(3):
        throttle.record_failure("carol", None)  # locked until now + 10
    clock.now += SETTINGS.lockout_s
    throttle.prune()
    assert count(db, "login_lockouts") == 0
    assert count(db, "login_failures") == 3
    clock.now += SETTINGS.failure_window_s - SETTINGS.lockout_s
    throttle.prune()
    assert count(db, "login_failures") == 0
    throttle.record_success("alice", "10.0.0.2", alice)  # a recent address stays
    clock.now = 1000.0 + SETTINGS.known_address_s
    throttle.prune()
    with db.session() as session:
        addresses = [row[0] for row in session.execute(text("SELECT address FROM login_addresses"))]
    assert addresses == ["10.0.0.2"]


def test_a_username_lockout_spares_only_that_users_own_known_addresses(throttle, users):
    throttle.record_success("bob", "10.0.0.1", users.create("bob", "pw").id)
    throttle.record_success("alice", "10.0.0.2", users.create("alice", "pw").id)
    for _ in range(3):
        throttle.record_failure("alice", None)
    assert not throttle.is_blocked("alice", "10.0.0.2")
    assert throttle.is_blocked("alice", "10.0.0.1")  # bob's address, not alice's


def test_a_known_address_is_forgotten_exactly_known_address_s_after_its_login(throttle, clock, users):
    throttle.record_success("alice", "10.0.0.2", users.create("alice", "pw").id)
    clock.now += SETTINGS.known_address_s - 5
    for _ in range(3):
        throttle.record_failure("alice", None)  # locked for 10 s from here
    assert not throttle.is_blocked("alice", "10.0.0.2")
    clock.now += 5
    assert throttle.is_blocked("alice", "10.0.0.2")


def test_a_login_with_neither_username_nor_address_is_never_blocked(throttle):
    assert throttle.is_blocked(None, None) is False


def test_a_lockout_ends_exactly_lockout_s_after_the_failure_that_made_it(throttle, clock):
    for _ in range(3):
        throttle.record_failure("alice", None)
    clock.now += SETTINGS.lockout_s
    assert not throttle.is_blocked("alice", None)


def test_a_failure_exactly_failure_window_s_old_no_longer_counts(throttle, clock):
    throttle.record_failure("alice", None)
    throttle.record_failure("alice", None)
    clock.now += SETTINGS.failure_window_s
    throttle.record_failure("alice", None)
    assert not throttle.is_blocked("alice", None)


def test_a_username_and_an_address_with_the_same_text_are_counted_apart(throttle, users):
    throttle.record_failure("10.0.0.7", None)
    throttle.record_failure("10.0.0.7", None)
    throttle.record_failure(None, "10.0.0.7")
    assert not throttle.is_blocked(None, "10.0.0.7")
    throttle.record_failure(None, "10.0.0.7")
    throttle.record_success("10.0.0.7", None, users.create("10.0.0.7", "pw").id)  # clears the username's only
    throttle.record_failure(None, "10.0.0.7")
    assert throttle.is_blocked(None, "10.0.0.7")


def stale_failures(db, username: str) -> int:
    with db.session() as session:
        return session.execute(
            text("SELECT COUNT(*) FROM login_failures WHERE key_value = :v"), {"v": username}
        ).scalar()


def test_stale_rows_are_swept_every_100_failures_this_process_records(throttle, clock, db):
    for cycle in ("old", "older"):
        throttle.record_failure(cycle, None)  # the first of the next 100
        clock.now += SETTINGS.failure_window_s + 1  # stale now, but only a sweep deletes it
        for _ in range(98):
            throttle.record_failure("busy", None)
        assert stale_failures(db, cycle) == 1
        throttle.record_failure("busy", None)  # the 100th
        assert stale_failures(db, cycle) == 0


def test_failures_are_stored_under_user_and_address_keys_with_nul_escaped(throttle, db):
    throttle.record_failure("al\x00ice", "10.0.0.1")
    with db.session() as session:
        rows = set(session.execute(text("SELECT key_kind, key_value FROM login_failures")).all())
    assert rows == {("user", "al\\x00ice"), ("address", "10.0.0.1")}


def test_a_success_leaves_other_usernames_failures(throttle, users):
    throttle.record_failure("bob", None)
    throttle.record_failure("bob", None)
    throttle.record_success("alice", None, users.create("alice", "pw").id)
    throttle.record_failure("bob", None)
    assert throttle.is_blocked("bob", None)
