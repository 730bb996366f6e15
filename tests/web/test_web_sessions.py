"""Browser sessions: only digests stored, absolute expiry at the ttl, logout, CSRF derived from the cookie."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from serve_app.storage.models import WebSession
from serve_app.storage.web_sessions import (
    MAX_TOKEN_CHARS,
    WebSessions,
    csrf_matches,
    csrf_token,
    token_sha256,
)

TTL = 60.0


def test_only_the_tokens_digests_are_stored(db, alice, clock):
    sessions = WebSessions(db, TTL, clock)
    token = sessions.create(alice.id, "stamp")
    assert len(token) >= 43  # 32 random bytes, urlsafe base64
    with db.session() as session:
        row = session.scalar(select(WebSession))
        stored = (row.token_sha256, row.csrf_sha256, row.password_stamp, row.expires_at - row.created_at)
    assert stored[0] == hashlib.sha256(token.encode()).hexdigest() == token_sha256(token)
    assert stored[1] == token_sha256(csrf_token(token))
    assert token not in stored and csrf_token(token) not in stored
    assert stored[2:] == ("stamp", TTL)


def test_a_session_ends_exactly_at_its_ttl_however_often_it_is_used(db, alice, clock):
    sessions = WebSessions(db, TTL, clock)
    token = sessions.create(alice.id, "stamp")
    clock.now += TTL - 0.001  # under
    row = sessions.get(token)
    assert row is not None and (row.user_id, row.password_stamp) == (alice.id, "stamp")
    clock.now += 0.001  # at: ended
    assert sessions.get(token) is None
    clock.now += 1  # over
    assert sessions.get(token) is None


def test_logout_ends_only_that_session_and_purge_removes_expired_rows(db, alice, clock):
    sessions = WebSessions(db, TTL, clock)
    first, second = sessions.create(alice.id, "s"), sessions.create(alice.id, "s")
    assert first != second
    sessions.end(first)
    assert sessions.get(first) is None and sessions.get(second) is not None
    clock.now += TTL
    sessions.purge()
    with db.session() as session:
        assert session.scalar(select(WebSession)) is None


def test_unknown_malformed_and_oversized_tokens_find_nothing(db, alice, clock):
    sessions = WebSessions(db, TTL, clock)
    token = sessions.create(alice.id, "s")
    for wrong in ("", token[:-1], token + "x", "x" * (MAX_TOKEN_CHARS + 1), "\udcff"):
        assert sessions.get(wrong) is None
    sessions.end("x" * (MAX_TOKEN_CHARS + 1))  # nothing to do, no error
    assert sessions.get(token) is not None


def test_the_csrf_token_matches_only_its_own_session():
    token, other = "a" * 43, "b" * 43
    assert csrf_token(token) != csrf_token(other)
    assert csrf_matches(token, csrf_token(token))
    for presented in (None, "", csrf_token(other), csrf_token(token)[:-1], csrf_token(token) + "="):
        assert not csrf_matches(token, presented)
    assert not csrf_matches("", csrf_token(""))  # no session, no match
