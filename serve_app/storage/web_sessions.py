"""Browser sessions in the database: a cookie token per login, stored only as its SHA-256.

A login over HTTP makes a random token (`TOKEN_BYTES` from `secrets`,
urlsafe base64): the browser keeps it in its session cookie, the table
`web_sessions` keeps its SHA-256, the user, the password stamp the login
checked and an absolute expiry (`ttl_s` from the login; use does not extend
it). The CSRF token is derived from the cookie token (`csrf_token`), so a
reloaded page can be given it again without storing it; the row holds its
digest too. Whether the account may still act (disabled, password changed,
VIP now) is `serve_app.accounts.Accounts`' answer, as for address sessions.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete

from serve_app.storage.database import Database
from serve_app.storage.models import WebSession

TOKEN_BYTES = 32  # of randomness in a cookie token
MAX_TOKEN_CHARS = 128  # a longer cookie is no token of ours: refused before hashing
PURGE_EVERY = 100  # logins by this process between sweeps of expired rows


def new_token() -> str:
    """A fresh cookie token: 32 random bytes, urlsafe base64 without padding (43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a token, the only form the database holds."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token of the session whose cookie token is `token` (a keyed digest of it)."""
    digest = hmac.new(token.encode("utf-8", "surrogatepass"), b"vggt csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_matches(token: str, presented: str | None) -> bool:
    """Whether `presented` (the X-CSRF-Token header) is the session's CSRF token, compared in constant time."""
    if not presented or not token:
        return False
    return hmac.compare_digest(csrf_token(token).encode(), presented.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True)
class WebSessionRow:
    """What a session's row says: who, and the password stamp its login checked."""

    user_id: int
    password_stamp: str
    expires_at: float


class WebSessions:
    """Browser sessions of one database, each with an absolute expiry."""

    def __init__(self, db: Database, ttl_s: float, clock: Callable[[], float] = time.time):
        """clock: Unix seconds, shared by every process."""
        self._db = db
        self.ttl_s = ttl_s
        self._clock = clock
        self._since_purge = 0

    def create(self, user_id: int, password_stamp: str) -> str:
        """A new session of `user_id` from now for `ttl_s`; its cookie token (returned once, never stored)."""
        token = new_token()
        now = self._clock()
        row = WebSession(
            token_sha256=token_sha256(token),
            user_id=user_id,
            password_stamp=password_stamp,
            csrf_sha256=token_sha256(csrf_token(token)),
            created_at=now,
            expires_at=now + self.ttl_s,
        )
        with self._db.session() as session:
            session.add(row)
        self._since_purge += 1
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            self.purge()
        return token

    def get(self, token: str) -> WebSessionRow | None:
        """The live session of a cookie token, or None (unknown, malformed, expired, ended)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        with self._db.session() as session:
            row = session.get(WebSession, token_sha256(token))
            if row is None or row.expires_at <= self._clock():
                return None
            return WebSessionRow(row.user_id, row.password_stamp, row.expires_at)

    def end(self, token: str) -> None:
        """Delete the session of `token` (logout); nothing if there is none."""
        if token and len(token) <= MAX_TOKEN_CHARS:
            with self._db.session() as session:
                session.execute(delete(WebSession).where(WebSession.token_sha256 == token_sha256(token)))

    def end_user(self, user_id: int) -> None:
        """Delete every session of `user_id`."""
        with self._db.session() as session:
            session.execute(delete(WebSession).where(WebSession.user_id == user_id))

    def purge(self) -> None:
        """Delete expired sessions."""
        with self._db.session() as session:
            session.execute(delete(WebSession).where(WebSession.expires_at <= self._clock()))
