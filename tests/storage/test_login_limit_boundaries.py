"""The LOGIN limits of docs/PROTOCOL.md: length caps and the throttle's `auth.*` bounds, at each edge.

Usernames of 80 characters and passwords of 1024 at most: at the cap and one
under, an account can be made and logs in; one over, it cannot be made, and
a LOGIN is refused without a password check and without counting as a
failure. The caps are written as numbers here, not read from the code, so a
cap that moves by one fails. The throttle's counts and times are tried at
the setting, one under and one over, on a clock of the test's.
"""

from __future__ import annotations

import pytest

from serve_app.config import AuthSettings
from serve_app.storage import Database, LoginThrottle, ScryptParams, UserStore
from serve_app.storage.users import InvalidUsernameError, PasswordTooLongError
from clock import Clock

USERNAME_CAP = 80
PASSWORD_CAP = 1024
FAST = ScryptParams(n=2**10, r=8, p=1)


@pytest.fixture
def users(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'users.db'}")
    db.upgrade()
    yield UserStore(db, AuthSettings(max_failures=1), password_params=FAST)  # one counted failure locks
    db.dispose()


@pytest.mark.parametrize("length", [USERNAME_CAP - 1, USERNAME_CAP])
def test_a_username_up_to_80_characters_is_made_and_logs_in(users, length):
    name = "é" * length  # characters, not bytes
    users.create(name, "password")
    assert users.authenticate(name, "password", "10.0.0.1") is not None


def test_a_username_of_81_characters_is_not_made(users):
    with pytest.raises(InvalidUsernameError):
        users.create("u" * (USERNAME_CAP + 1), "password")


@pytest.mark.parametrize("length", [PASSWORD_CAP - 1, PASSWORD_CAP])
def test_a_password_up_to_1024_characters_is_set_and_logs_in(users, length):
    password = "ß" * length
    users.create("owner", password)
    assert users.authenticate("owner", password, "10.0.0.1") is not None
    users.set_password("owner", password[:-1] + "x")
    assert users.authenticate("owner", password[:-1] + "x", "10.0.0.1") is not None


def test_a_password_of_1025_characters_is_not_set(users):
    with pytest.raises(PasswordTooLongError):
        users.create("owner", "p" * (PASSWORD_CAP + 1))
    users.create("owner", "password")
    with pytest.raises(PasswordTooLongError):
        users.set_password("owner", "p" * (PASSWORD_CAP + 1))


@pytest.mark.parametrize(
    "username, password",
    [("owner", "p" * (PASSWORD_CAP + 1)), ("o" * (USERNAME_CAP + 1), "password")],
    ids=["password-1025", "username-81"],
)
def test_an_over_long_login_is_refused_without_counting(users, username, password):
    users.create("owner", "password")
    assert users.authenticate(username, password, "10.0.0.1") is None
    # not counted: with max_failures=1 a counted failure would have locked the address
    assert users.authenticate("owner", "password", "10.0.0.1") is not None


@pytest.mark.parametrize(
    "username, password",
    [("owner", "p" * PASSWORD_CAP), ("o" * USERNAME_CAP, "password")],
    ids=["password-1024", "username-80"],
)
def test_a_wrong_login_at_the_caps_is_checked_and_counted(users, username, password):
    users.create("owner", "password")
    assert users.authenticate(username, password, "10.0.0.1") is None  # wrong, so counted
    assert users.authenticate("owner", "password", "10.0.0.1") is None  # the address is locked now


# -- the throttle: auth.max_failures, auth.failure_window_s, auth.lockout_s, auth.known_address_s ----


@pytest.fixture
def database(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'throttle.db'}")
    db.upgrade()
    yield db
    db.dispose()


def throttle_of(database, clock, **auth) -> LoginThrottle:
    return LoginThrottle(database, AuthSettings(**auth), clock=clock)


@pytest.mark.parametrize("failures, blocked", [(4, False), (5, True), (6, True)])
def test_the_default_max_failures_locks_at_the_fifth(database, failures, blocked):
    throttle = throttle_of(database, Clock(1_000_000.0))
    for _ in range(failures):
        throttle.record_failure("alice", "10.0.0.1")
    assert throttle.is_blocked("alice", None) is blocked  # the username's count
    assert throttle.is_blocked(None, "10.0.0.1") is blocked  # the address's count


@pytest.mark.parametrize("after_s, blocked", [(29.5, True), (30.0, False), (30.5, False)])
def test_the_default_lockout_ends_30_s_after_the_failure_that_locked(database, after_s, blocked):
    clock = Clock(1_000_000.0)
    throttle = throttle_of(database, clock, max_failures=1)
    throttle.record_failure("alice", "10.0.0.1")
    clock.now += after_s
    assert throttle.is_blocked("alice", "10.0.0.1") is blocked


@pytest.mark.parametrize("gap_s, blocked", [(299.5, True), (300.0, False), (300.5, False)])
def test_the_default_failure_window_forgets_a_failure_300_s_old(database, gap_s, blocked):
    clock = Clock(1_000_000.0)
    throttle = throttle_of(database, clock, max_failures=2, lockout_s=1000.0)
    throttle.record_failure("alice", "10.0.0.1")
    clock.now += gap_s
    throttle.record_failure("alice", "10.0.0.1")  # locks only while the first is in the window
    assert throttle.is_blocked("alice", "10.0.0.1") is blocked


@pytest.mark.parametrize("since_s, spared", [(99.5, True), (100.5, False)])
def test_known_address_s_spares_the_users_address_up_to_its_age(database, since_s, spared):
    clock = Clock(1_000_000.0)
    throttle = throttle_of(database, clock, max_failures=1, lockout_s=1000.0, known_address_s=100.0)
    users = UserStore(database, AuthSettings(), password_params=FAST)
    user = users.create("alice", "password")
    throttle.record_success("alice", "10.0.0.5", user.id)
    clock.now += since_s
    throttle.record_failure("alice", "10.0.0.1")  # locks the username
    assert throttle.is_blocked("alice", "10.0.0.1")
    assert throttle.is_blocked("alice", "10.0.0.5") is not spared
