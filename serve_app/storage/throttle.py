"""Slowing down repeated failed logins, per username and per client address.

After `max_failures` failures within `failure_window_s` for one username or
one address, that key is refused for `lockout_s`; a further failure while the
old ones are still in the window refuses it again. A refused login is not
checked at all, so guessing stops costing the server scrypt work.

The counts live in the database (`login_failures`, `login_lockouts`), so
every replica and node sees the same ones and a restart forgets nothing.

A username lockout does not apply at an address the user has logged in from
successfully within `known_address_s` (`login_addresses`): guessing a known
user's password from other addresses cannot lock the owner out at home. The
address's own count still applies there. A success clears the username's
failures but not the address's, so one valid account cannot reset the count
for guessing others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from sqlalchemy import delete, func, select

from serve_app.config import AuthSettings
from serve_app.storage.database import Database, retry_on_conflict
from serve_app.storage.models import LoginAddress, LoginFailure, LoginLockout
from serve_app.storage.models import User as UserRow

PRUNE_EVERY = 100  # failures recorded by this process between sweeps of stale rows
KEY_CHARS = 255  # the key column's width


class LoginThrottle:
    """Failure counts and lockouts keyed by username and by address, in the database."""

    def __init__(self, db: Database, settings: AuthSettings, clock: Callable[[], float] = time.time):
        """clock: Unix seconds (every process must agree on it, so not a monotonic clock)."""
        self._db = db
        self._settings = settings
        self._clock = clock
        self._since_prune = 0

    def is_blocked(self, username: str | None, address: str | None) -> bool:
        """Whether a login for this username from this address is refused now."""
        now = self._clock()
        keys = list(_keys(username, address))
        if not keys:
            return False
        with self._db.session() as session:
            blocked = {
                kind
                for kind, value in keys
                if (until := session.get(LoginLockout, (kind, value))) is not None and until.blocked_until > now
            }
            if "user" in blocked and address is not None and self._is_known_address(session, _key(username or ""), _key(address), now):
                blocked.discard("user")
        return bool(blocked)

    def record_failure(self, username: str | None, address: str | None) -> None:
        now = self._clock()
        window_start = now - self._settings.failure_window_s
        for kind, value in _keys(username, address):
            with self._db.session() as session:
                session.add(LoginFailure(key_kind=kind, key_value=value, failed_at=now))
                session.execute(_failures_of(kind, value).where(LoginFailure.failed_at <= window_start))
                count = session.scalar(
                    select(func.count())
                    .select_from(LoginFailure)
                    .where(LoginFailure.key_kind == kind, LoginFailure.key_value == value)
                )
            if count >= self._settings.max_failures:
                self._lock(kind, value, now + self._settings.lockout_s)
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            self.prune()

    def record_success(self, username: str, address: str | None, user_id: int) -> None:
        """Clear the username's failures and lockout; remember `address` as one the user logs in from."""
        key = _key(username)
        with self._db.session() as session:
            session.execute(_failures_of("user", key))
            session.execute(delete(LoginLockout).where(LoginLockout.key_kind == "user", LoginLockout.key_value == key))
        if address is not None:
            retry_on_conflict(lambda: self._remember_address(user_id, address))

    def prune(self) -> None:
        """Delete failures older than the window and lockouts that have ended."""
        now = self._clock()
        with self._db.session() as session:
            session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - self._settings.failure_window_s))
            session.execute(delete(LoginLockout).where(LoginLockout.blocked_until <= now))
            session.execute(delete(LoginAddress).where(LoginAddress.last_login_at <= now - self._settings.known_address_s))

    def _lock(self, kind: str, value: str, until: float) -> None:
        def write() -> None:
            with self._db.session() as session:
                row = session.get(LoginLockout, (kind, value))
                if row is None:
                    session.add(LoginLockout(key_kind=kind, key_value=value, blocked_until=until))
                else:
                    row.blocked_until = max(row.blocked_until, until)

        retry_on_conflict(write)

    def _remember_address(self, user_id: int, address: str) -> None:
        with self._db.session() as session:
            row = session.get(LoginAddress, (user_id, address))
            if row is None:
                session.add(LoginAddress(user_id=user_id, address=address, last_login_at=self._clock()))
            else:
                row.last_login_at = self._clock()

    def _is_known_address(self, session, username: str | None, address: str, now: float) -> bool:
        if username is None:
            return False
        since = now - self._settings.known_address_s
        found = session.scalar(
            select(LoginAddress.user_id)
            .join(UserRow, UserRow.id == LoginAddress.user_id)
            .where(UserRow.username == username, LoginAddress.address == address, LoginAddress.last_login_at > since)
        )
        return found is not None


def _failures_of(kind: str, value: str):
    return delete(LoginFailure).where(LoginFailure.key_kind == kind, LoginFailure.key_value == value)


def _key(text: str) -> str:
    """Text fit for the key column: lone surrogates (no encoding exists for them) and NUL (PostgreSQL
    text cannot hold it) escaped, cut to the column's width."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:KEY_CHARS]


def _keys(username: str | None, address: str | None) -> Iterator[tuple[str, str]]:
    if username is not None:
        yield ("user", _key(username))
    if address is not None:
        yield ("address", _key(address))
