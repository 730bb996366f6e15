import pytest
from sqlalchemy import text

from serve_app.config import AuthSettings
from serve_app.storage import LoginThrottle, ScryptParams, UserStore
from serve_app.storage import users as users_module
from clock import Clock

FAST_PARAMS = ScryptParams(n=2**10, r=8, p=1)
SETTINGS = AuthSettings(max_failures=3, failure_window_s=60.0, lockout_s=10.0)


@pytest.fixture
def clock():
    return Clock(1000.0)


@pytest.fixture
def throttle(db, clock):
    return LoginThrottle(db, SETTINGS, clock=clock)


def fail(throttle, times, username="alice", address="10.0.0.1"):
    for _ in range(times):
        throttle.record_failure(username, address)


def test_blocks_after_max_failures_for_lockout_seconds(throttle, clock):
    fail(throttle, 2)
    assert not throttle.is_blocked("alice", "10.0.0.1")
    fail(throttle, 1)
    assert throttle.is_blocked("alice", "10.0.0.1")
    clock.now += 9.9
    assert throttle.is_blocked("alice", "10.0.0.1")
    clock.now += 0.2
    assert not throttle.is_blocked("alice", "10.0.0.1")


def test_username_is_blocked_from_every_address(throttle):
    fail(throttle, 3, address=None)
    assert throttle.is_blocked("alice", "192.168.1.1")
    assert not throttle.is_blocked("bob", "192.168.1.1")


def test_address_is_blocked_for_every_username(throttle):
    for name in ("a", "b", "c"):
        throttle.record_failure(name, "10.0.0.9")
    assert throttle.is_blocked("someone-else", "10.0.0.9")
    assert not throttle.is_blocked("someone-else", "10.0.0.10")


def test_failures_older_than_the_window_are_forgotten(throttle, clock):
    fail(throttle, 2)
    clock.now += 61
    fail(throttle, 1)
    assert not throttle.is_blocked("alice", "10.0.0.1")


def test_a_failure_after_lockout_within_the_window_blocks_again(throttle, clock):
    fail(throttle, 3)
    clock.now += 11
    assert not throttle.is_blocked("alice", "10.0.0.1")
    fail(throttle, 1)
    assert throttle.is_blocked("alice", "10.0.0.1")


def test_success_clears_the_username_but_not_the_address(throttle, users):
    fail(throttle, 3)
    throttle.record_success("alice", None, users.create("alice", "pw").id)
    assert not throttle.is_blocked("alice", None)
    assert throttle.is_blocked(None, "10.0.0.1")


def test_counts_are_shared_by_every_process_and_outlive_them(db, clock):
    """Two throttles over one database: another replica, or this one after a restart."""
    first, second = LoginThrottle(db, SETTINGS, clock=clock), LoginThrottle(db, SETTINGS, clock=clock)
    fail(first, 2)
    fail(second, 1)
    assert first.is_blocked("alice", "10.0.0.5")
    assert LoginThrottle(db, SETTINGS, clock=clock).is_blocked(None, "10.0.0.1")


def test_stale_rows_are_pruned(throttle, clock, db):
    fail(throttle, 3, username="old")
    clock.now += 61
    fail(throttle, 1, username="late", address=None)
    throttle.prune()
    with db.session() as session:
        keys = set(session.execute(text("SELECT key_kind, key_value FROM login_failures")).all())
        lockouts = session.execute(text("SELECT COUNT(*) FROM login_lockouts")).scalar()
    assert keys == {("user", "late")}
    assert lockouts == 0


def test_a_lone_surrogate_username_is_counted(throttle):
    fail(throttle, 3, username="\ud800x", address=None)
    assert throttle.is_blocked("\ud800x", None)
    assert not throttle.is_blocked("x", None)


# --- through UserStore.authenticate -----------------------------------------


@pytest.fixture
def store(db, clock):
    return UserStore(db, SETTINGS, password_params=FAST_PARAMS, throttle=LoginThrottle(db, SETTINGS, clock=clock))


def test_throttled_login_is_refused_even_with_the_right_password(store, clock):
    store.create("alice", "right")
    for _ in range(3):
        assert store.authenticate("alice", "wrong", "10.0.0.1") is None
    assert store.authenticate("alice", "right", "10.0.0.2") is None
    clock.now += 11
    assert store.authenticate("alice", "right", "10.0.0.2") is not None


def test_throttled_login_does_not_check_the_password(store, monkeypatch):
    store.create("alice", "right")
    for _ in range(3):
        store.authenticate("alice", "wrong", "10.0.0.1")

    def must_not_run(*_args):
        raise AssertionError("password checked while throttled")

    monkeypatch.setattr(users_module, "verify_password", must_not_run)
    assert store.authenticate("alice", "right", "10.0.0.1") is None


def test_guessing_many_usernames_from_one_address_is_throttled(store, clock):
    store.create("alice", "right")
    for name in ("x", "y", "z"):
        assert store.authenticate(name, "guess", "10.0.0.7") is None
    assert store.authenticate("alice", "right", "10.0.0.7") is None
    assert store.authenticate("alice", "right", "10.0.0.8") is not None


def test_disabled_and_unknown_count_as_failures(store):
    store.create("carol", "pw")
    store.set_status("carol", active=False)
    for _ in range(3):
        assert store.authenticate("carol", "pw", None) is None
    store.set_status("carol", active=True)
    assert store.authenticate("carol", "pw", None) is None  # still locked out


def test_guessing_elsewhere_cannot_lock_the_owner_out_where_she_logs_in(store, clock):
    store.create("alice", "right")
    assert store.authenticate("alice", "right", "10.0.0.1") is not None  # her phone's address
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):  # rotating guessers
        assert store.authenticate("alice", "guess", address) is None
    assert store.authenticate("alice", "right", "198.51.100.4") is None  # the username is locked elsewhere
    assert store.authenticate("alice", "right", "10.0.0.1") is not None  # but not where she logged in
    clock.now += SETTINGS.known_address_s + 1  # an address not used for a month is forgotten
    for address in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
        store.authenticate("alice", "guess", address)
    assert store.authenticate("alice", "right", "10.0.0.1") is None


def test_failures_from_a_known_address_still_lock_that_address(store):
    store.create("alice", "right")
    assert store.authenticate("alice", "right", "10.0.0.1") is not None
    for name in ("x", "y", "z"):
        store.authenticate(name, "guess", "10.0.0.1")
    assert store.authenticate("alice", "right", "10.0.0.1") is None
