import logging
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from serve_app.storage import (
    AddressSessions,
    EmptyPasswordError,
    InvalidUsernameError,
    PasswordTooLongError,
    UnknownUserError,
    UserExistsError,
)
from serve_app.config import AuthSettings
from serve_app.storage import users as users_module
from serve_app.storage.passwords import ScryptParams, hash_password, needs_rehash, verify_password

from tcp_proxy.backend import User


def stored_hash(db, username):
    with db.engine.connect() as connection:
        return connection.execute(
            text("SELECT password_hash FROM users WHERE username = :u"), {"u": username}
        ).scalar_one()


def test_create_then_authenticate(users, db):
    created = users.create("alice", "pa55word", is_vip=True)
    assert created == User(id=created.id, username="alice", is_vip=True)
    assert users.authenticate("alice", "pa55word", "10.0.0.1") == created
    stored = stored_hash(db, "alice")
    assert stored.startswith("scrypt$") and "pa55word" not in stored


def test_unknown_wrong_and_disabled_all_answer_none(users):
    users.create("alice", "pa55word")
    users.create("dora", "pa55word")
    users.set_status("dora", active=False)
    assert users.authenticate("nobody", "pa55word") is None
    assert users.authenticate("alice", "Pa55word") is None
    assert users.authenticate("dora", "pa55word") is None
    users.set_status("dora", active=True)
    assert users.authenticate("dora", "pa55word") is not None


@pytest.mark.parametrize("username, password", [(None, "x"), ("alice", None), (1, 2), ("alice", "x" * 5000)])
def test_malformed_login_input_answers_none(users, username, password):
    users.create("alice", "pa55word")
    assert users.authenticate(username, password) is None


def test_vip_counts_only_until_it_expires(users):
    now = datetime.now(timezone.utc)
    users.create("forever", "pw", is_vip=True)
    users.create("later", "pw", is_vip=True, vip_expire_time=now + timedelta(days=1))
    users.create("expired", "pw", is_vip=True, vip_expire_time=now - timedelta(minutes=1))
    users.create("plain", "pw")
    assert users.authenticate("forever", "pw").is_vip
    assert users.authenticate("later", "pw").is_vip
    assert not users.authenticate("expired", "pw").is_vip
    assert not users.authenticate("plain", "pw").is_vip


def test_set_vip_grants_with_expiry_and_removes(users):
    users.create("alice", "pw")
    users.set_vip("alice", True, datetime.now(timezone.utc) + timedelta(hours=1))
    assert users.get("alice").is_vip
    users.set_vip("alice", True, datetime.now(timezone.utc) - timedelta(hours=1))
    assert not users.get("alice").is_vip
    users.set_vip("alice", True)
    assert users.get("alice").is_vip
    users.set_vip("alice", False)
    assert not users.get("alice").is_vip
    assert users.list()[0]["vip_expire_time"] is None


def test_aware_expiry_is_stored_as_utc(users):
    tokyo = timezone(timedelta(hours=9))
    users.create("alice", "pw", is_vip=True, vip_expire_time=datetime(2030, 1, 1, 9, 0, tzinfo=tokyo))
    assert users.list()[0]["vip_expire_time"] == datetime(2030, 1, 1, 0, 0)


def test_set_password_replaces_the_old_one(users):
    users.create("alice", "old")
    users.set_password("alice", "new")
    assert users.authenticate("alice", "old") is None
    assert users.authenticate("alice", "new") is not None


def test_bad_input_raises_clear_value_errors(users):
    users.create("alice", "pw")
    with pytest.raises(UserExistsError, match="already exists"):
        users.create("alice", "other")
    with pytest.raises(EmptyPasswordError):
        users.create("bob", "")
    with pytest.raises(PasswordTooLongError):
        users.create("bob", "x" * 1025)
    for bad_name in ("", "   ", " padded"):
        with pytest.raises(InvalidUsernameError):
            users.create(bad_name, "pw")
    with pytest.raises(UnknownUserError, match="nobody"):
        users.set_password("nobody", "pw")
    with pytest.raises(UnknownUserError):
        users.set_vip("nobody", True)
    with pytest.raises(UnknownUserError):
        users.set_status("nobody", False)
    with pytest.raises(EmptyPasswordError):
        users.set_password("alice", "")
    assert issubclass(UserExistsError, ValueError)
    assert [row["username"] for row in users.list()] == ["alice"]


def test_list_shows_state_but_no_password_hash(users):
    users.create("alice", "pw", is_vip=True)
    users.create("bob", "pw")
    users.set_status("bob", active=False)
    rows = users.list()
    assert [(r["username"], r["is_vip"], r["vip_active"], r["active"]) for r in rows] == [
        ("alice", True, True, True),
        ("bob", False, False, False),
    ]
    assert all("password_hash" not in row for row in rows)


def insert_legacy_user(db, username, plaintext):
    with db.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO users (username, password_hash, is_vip, status) VALUES (:u, :p, :vip, 1)"),
            {"u": username, "p": plaintext, "vip": True},
        )


def test_legacy_plaintext_is_rewritten_as_a_hash_on_login(users, db):
    insert_legacy_user(db, "demo", "123456")
    assert users.authenticate("demo", "wrong") is None
    assert stored_hash(db, "demo") == "123456"  # a failed login rewrites nothing
    info = users.authenticate("demo", "123456")
    assert info is not None and info.is_vip
    rewritten = stored_hash(db, "demo")
    assert rewritten.startswith("scrypt$") and verify_password("123456", rewritten)
    assert users.authenticate("demo", "123456") == info
    assert stored_hash(db, "demo") == rewritten  # already current: left alone


def test_passwords_never_reach_the_log(users, db, caplog):
    caplog.set_level(logging.DEBUG)
    insert_legacy_user(db, "demo", "legacy-pw-123")
    users.create("alice", "alice-pw-456")
    users.authenticate("alice", "alice-pw-456", "10.0.0.1")
    users.authenticate("alice", "guess-pw-789", "10.0.0.1")
    users.authenticate("nobody", "guess-pw-000", "10.0.0.1")
    users.authenticate("demo", "legacy-pw-123", "10.0.0.1")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "login refused" in logged
    for secret in ("legacy-pw-123", "alice-pw-456", "guess-pw-789", "guess-pw-000"):
        assert secret not in logged


def test_login_succeeds_even_if_rewriting_the_hash_fails(users, db, monkeypatch):
    insert_legacy_user(db, "demo", "123456")
    real_execute = Session.execute

    def execute_failing_on_updates(self, statement, *args, **kwargs):
        if getattr(statement, "is_update", False):
            raise OperationalError("UPDATE users", {}, Exception("database is locked"))
        return real_execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(Session, "execute", execute_failing_on_updates)
    assert users.authenticate("demo", "123456") is not None
    monkeypatch.undo()
    assert stored_hash(db, "demo") == "123456"  # rewritten at a later login
    users.authenticate("demo", "123456")
    assert stored_hash(db, "demo").startswith("scrypt$")


@pytest.mark.parametrize(("username", "password"), [("\ud800", "pw"), ("alice", "pass\udfffword")])
def test_lone_surrogates_are_a_counted_failure_not_an_error(users, caplog, username, password):
    users.create("alice", "password")
    caplog.set_level(logging.INFO)
    for _ in range(AuthSettings().max_failures):
        assert users.authenticate(username, password, "198.51.100.9") is None
    assert "not valid Unicode" in caplog.text and "Traceback" not in caplog.text
    assert not any(record.levelno >= logging.ERROR for record in caplog.records)
    assert users.throttle.is_blocked("someone-else", "198.51.100.9")  # the address's failures counted


def test_a_rehash_never_undoes_a_password_change_made_meanwhile(users, db, monkeypatch):
    """An admin's `users.py passwd` between a legacy login's check and its rehash wins."""
    import serve_app.storage.users as users_module

    insert_legacy_user(db, "demo", "old-password")
    real_verify = users_module.verify_password
    changed = []

    def verify_then_admin_changes_it(password, stored):
        ok = real_verify(password, stored)
        if ok and stored == "old-password" and not changed:
            changed.append(True)
            users.set_password("demo", "set-by-admin")  # lands before the login's rehash
        return ok

    monkeypatch.setattr(users_module, "verify_password", verify_then_admin_changes_it)
    assert users.authenticate("demo", "old-password") is not None  # it was right when checked
    monkeypatch.setattr(users_module, "verify_password", real_verify)
    assert changed and verify_password("set-by-admin", stored_hash(db, "demo"))
    assert users.authenticate("demo", "old-password") is None
    assert users.authenticate("demo", "set-by-admin") is not None


def test_a_nul_in_the_username_is_a_counted_failure_not_an_error(users, caplog):
    """PostgreSQL text cannot hold NUL: such a login must be refused before any query."""
    users.create("alice", "password")
    caplog.set_level(logging.INFO)
    for _ in range(AuthSettings().max_failures):
        assert users.authenticate("alice\x00", "password", "198.51.100.7") is None
    assert users.throttle.is_blocked("someone-else", "198.51.100.7")
    assert users.get("alice\x00") is None
    with pytest.raises(InvalidUsernameError):
        users.create("bob\x00", "pw")
    assert users.authenticate("alice", "pass\x00word") is None  # a NUL in a password is only a wrong password


STORE_PARAMS = ScryptParams(n=2**10, r=8, p=1)  # the `users` fixture's (tests/storage/conftest.py)


@pytest.mark.parametrize(
    "stored",
    [
        "plaintext-legacy",
        "scrypt$not-a-hash",
        hash_password("pw", ScryptParams(n=2**4, r=1, p=1)),  # weaker than the store's parameters
    ],
)
def test_every_stored_hash_costs_a_verification_at_the_current_parameters(users, db, monkeypatch, stored):
    """Timing: a login against a weak, unparseable or legacy hash must not answer faster than one against
    a current hash (it would tell an attacker which accounts are weak or broken)."""
    users.create("weak", "pw")
    with db.session() as session:
        session.execute(text("UPDATE users SET password_hash = :h WHERE username = 'weak'"), {"h": stored})
    checked: list[bool] = []
    real_verify = users_module.verify_password

    def recording(password, against):
        checked.append(not needs_rehash(against, STORE_PARAMS))  # a verification at the current parameters
        return real_verify(password, against)

    monkeypatch.setattr(users_module, "verify_password", recording)
    users.authenticate("weak", "wrong", "192.0.2.1")
    assert any(checked), checked


def test_set_password_ends_the_users_address_sessions_and_changes_the_stamp(db, users):
    alice, bob = users.create("alice", "old"), users.create("bob", "pw")
    sessions = AddressSessions(db, ttl_s=60)
    sessions.bind("10.0.0.1", alice.id)
    sessions.bind("10.0.0.2", bob.id)
    before = users.authenticate("alice", "old")
    assert before.password_stamp == users.current(alice.id).password_stamp
    users.set_password("alice", "new")
    assert sessions.user_id_at("10.0.0.1") is None
    assert sessions.user_id_at("10.0.0.2") == bob.id  # other users keep theirs
    after = users.authenticate("alice", "new")
    assert after == before and after.password_stamp != before.password_stamp
    assert users.current(alice.id).password_stamp == after.password_stamp
