"""Address sessions in the database: which user a client address acts as, and until when.

A successful LOGIN binds the client's address to its user for a fixed time
(`proxy.session_ttl_s`, counted from that LOGIN; use does not extend it). The
latest LOGIN from an address replaces its binding. Rows live in
`address_sessions`, so every replica and node of the TCP server sees them
and a restart keeps them. Whether the account may still act (disabled, VIP)
is the user store's answer, read when the session is used; a new password
deletes the user's bindings (`UserStore.set_password`). The address is the
client's key (`tcp_proxy.addresses.client_key`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, func, select

from serve_app.storage.database import Database, retry_on_conflict
from serve_app.storage.models import AddressSession

PURGE_EVERY = 100  # bindings made by this process between sweeps of expired rows


class AddressSessions:
    """Bindings of client addresses to user ids, each with an absolute expiry."""

    def __init__(self, db: Database, ttl_s: float, clock: Callable[[], float] = time.time):
        """clock: Unix seconds, shared by every process (not a monotonic clock)."""
        self._db = db
        self.ttl_s = ttl_s
        self._clock = clock
        self._since_purge = 0

    def bind(self, address: str, user_id: int) -> None:
        """Bind `address` to `user_id` from now for `ttl_s`, replacing any earlier binding."""
        retry_on_conflict(lambda: self._write(address, user_id))  # another replica may bind it at once
        self._since_purge += 1
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            self.purge()

    def unbind(self, address: str, user_id: int) -> None:
        """End the binding of `address`, if it is still `user_id`'s."""
        with self._db.session() as session:
            session.execute(
                delete(AddressSession).where(AddressSession.address == address, AddressSession.user_id == user_id)
            )

    def user_id_at(self, address: str) -> int | None:
        """The user id bound to `address` now, or None (never bound, expired)."""
        with self._db.session() as session:
            row = session.get(AddressSession, address)
            if row is None or row.expires_at <= self._clock():
                return None
            return row.user_id

    def live(self) -> int:
        """How many bindings have not expired."""
        with self._db.session() as session:
            count = session.scalar(
                select(func.count()).select_from(AddressSession).where(AddressSession.expires_at > self._clock())
            )
        return int(count or 0)

    def purge(self) -> None:
        """Delete expired bindings."""
        with self._db.session() as session:
            session.execute(delete(AddressSession).where(AddressSession.expires_at <= self._clock()))

    def _write(self, address: str, user_id: int) -> None:
        now = self._clock()
        with self._db.session() as session:
            row = session.get(AddressSession, address)
            if row is None:
                session.add(AddressSession(address=address, user_id=user_id, created_at=now, expires_at=now + self.ttl_s))
            else:
                row.user_id, row.created_at, row.expires_at = user_id, now, now + self.ttl_s
