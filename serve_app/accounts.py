"""LOGIN and GET_GLB: users and stored GLBs, for whichever process hosts the TCP server.

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
from tcp_proxy.backend import User

LOGIN_CONCURRENCY = 2  # scrypt verifications at once


class Accounts:
    """Users (login) and the GLB store (download by hash) of one database."""

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

    def close(self) -> None:
        self._db.dispose()
