"""LOGIN, GET_GLB and LIST: users and stored GLBs, for whichever process hosts the TCP server.

`Accounts` opens the database (upgrading its schema), checks passwords with
at most `LOGIN_CONCURRENCY` scrypt verifications at once (each ~128 MiB and
a CPU core for a moment, so a burst of logins cannot blow up the process),
and reads GLBs by share hash. Blocking work runs in threads, off the event
loop.
"""

from __future__ import annotations

import asyncio

from serve_app.config import AppSettings
from serve_app.storage import Database, GlbStore, UserStore
from tcp_proxy.backend import GlbInfo, Reconstruction, User
from tcp_proxy.errors import ServiceError

LOGIN_CONCURRENCY = 2  # scrypt verifications at once


class Accounts:
    """Users (login) and the GLB store (download by hash, a user's list) of one database."""

    def __init__(self, settings: AppSettings) -> None:
        """Opens the database without touching it; call `open` (or `upgrade`) before use."""
        self._db = Database(settings.storage.database_url)
        self._users = UserStore(self._db, settings.auth)
        self._glbs = GlbStore(self._db, settings.storage.storage_root)
        self._login_slots = asyncio.Semaphore(LOGIN_CONCURRENCY)

    @classmethod
    async def open(cls, settings: AppSettings) -> "Accounts":
        """Accounts with the schema brought up to date (an empty or older database is upgraded)."""
        accounts = cls(settings)
        await asyncio.to_thread(accounts._db.upgrade)
        return accounts

    async def login(self, username: str, password: str, address: str) -> User | None:
        async with self._login_slots:
            return await asyncio.to_thread(self._users.authenticate, username, password, address)

    async def get_glb(self, hash_text: str) -> bytes:
        return await asyncio.to_thread(self._glbs.read, hash_text)

    async def list_glbs(self, user: User, limit: int) -> list[GlbInfo]:
        return await asyncio.to_thread(self._glbs.list_for_user, user.id, limit)

    async def stored_result(self, user_id: int, source_digest: str) -> Reconstruction | None:
        """The user's stored GLB computed from `source_digest` (the result cache), or None."""

        def find() -> Reconstruction | None:
            hashed_name = self._glbs.find_by_digest(user_id, source_digest)
            if hashed_name is None:
                return None
            try:
                return Reconstruction(glb=self._glbs.read(hashed_name), hashed_name=hashed_name)
            except ServiceError:  # removed meanwhile: compute it again
                return None

        return await asyncio.to_thread(find)

    def close(self) -> None:
        self._db.dispose()
