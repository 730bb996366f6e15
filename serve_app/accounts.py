"""LOGIN, sessions, GET_GLB and LIST: users and stored GLBs, for whichever process hosts the TCP server.

`Accounts` opens the database (upgrading its schema), checks passwords with
at most `LOGIN_CONCURRENCY` scrypt verifications at once (each ~128 MiB and
a CPU core for a moment, so a burst of logins cannot blow up the process),
and reads GLBs by share hash. A throttled login is refused before it waits
for a verification slot, so junk logins cannot queue ahead of real ones, and
at most `auth.max_login_queue` logins wait for one: more are refused at once.
Logins are throttled per client key (`tcp_proxy.addresses.client_key`: an
IPv6 client is its `proxy.ipv6_prefix_length` network).

It is also the TCP server's `tcp_proxy.sessions.SessionStore`: address
bindings in the database, and each session's account re-read at most
`auth.account_recheck_s` stale (a disabled account stops acting within
seconds; VIP is the current one; a session whose LOGIN checked a password
that has since changed ends). Browser sessions (`web_login`, `web_user`,
`web_logout`: a cookie token per login, `serve_app.storage.web_sessions`)
go through the same login checks and the same account re-reads; a full
login queue is `BusyError` there. Blocking work runs in threads, off the
event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from serve_app.config import AppSettings
from serve_app.storage import AddressSessions, Database, GlbStore, UserStore
from serve_app.storage.blob_root import settings_root
from serve_app.storage.glb_download import FileDownload
from serve_app.storage.users import StampedUser
from serve_app.storage.web_jobs import WebJobs
from serve_app.storage.web_results import WebResult, predictions_stored, results_of
from serve_app.storage.web_sessions import WebSessions
from tcp_proxy.addresses import client_key
from tcp_proxy.backend import GlbInfo, Reconstruction, User
from tcp_proxy.errors import BusyError, ServiceError
from tcp_proxy.limits import Limit

log = logging.getLogger(__name__)

LOGIN_CONCURRENCY = 2  # scrypt verifications at once
MAX_ACCOUNTS_SEEN = 10_000  # cached account reads before the cache starts over


class Accounts:
    """Users (login) and the GLB store (download by hash, a user's list) of one database."""

    def __init__(self, settings: AppSettings) -> None:
        """Opens the database without touching it; call `open` (or `upgrade`) before use."""
        self._db = Database(settings.storage.database_url)
        self._users = UserStore(self._db, settings.auth)
        self._glbs = GlbStore(self._db, settings_root(settings.storage))
        self._sessions = AddressSessions(self._db, settings.proxy.session_ttl_s)
        self._web_sessions = WebSessions(self._db, settings.web.session_ttl_s)
        self.web_jobs = WebJobs(self._db)  # jobs started from a browser (serve_app.web_jobs)
        self._login_slots = asyncio.Semaphore(LOGIN_CONCURRENCY)
        self._logins = Limit(LOGIN_CONCURRENCY + settings.auth.max_login_queue)  # checked now or waiting
        self._ipv6_prefix_length = settings.proxy.ipv6_prefix_length
        self._recheck_s = settings.auth.account_recheck_s
        self._accounts_seen: dict[int, tuple[float, StampedUser | None]] = {}  # user id -> (read at, account)

    @classmethod
    async def open(cls, settings: AppSettings) -> "Accounts":
        """Accounts with the schema brought up to date (an empty or older database is upgraded)."""
        accounts = cls(settings)
        await asyncio.to_thread(accounts._db.upgrade)
        await asyncio.to_thread(accounts._users.prepare)
        return accounts

    async def login(self, username: str, password: str, address: str) -> User | None:
        """The account (stamped with its password) for a right password, else None; `address` is the
        client's, throttled under its key."""
        try:
            return await self._checked_login(username, password, address)
        except BusyError:
            return None

    async def _checked_login(self, username: str, password: str, address: str) -> StampedUser | None:
        """`login`, raising BusyError when `auth.max_login_queue` logins already wait for a check."""
        client = client_key(address, self._ipv6_prefix_length)
        if await asyncio.to_thread(self._users.throttle.is_blocked, _text(username), client):
            return None  # before a verification slot: a throttled flood does not delay other logins
        if not self._logins.try_acquire():
            log.info("login refused from %s: %d logins wait for a password check", client, self._logins.in_use)
            raise BusyError("too many logins wait for a password check")
        try:
            async with self._login_slots:
                user = await asyncio.to_thread(self._users.authenticate, username, password, client)
        finally:
            self._logins.release()
        if user is not None:
            self._accounts_seen[user.id] = (time.monotonic(), user)
        return user

    async def bind_address(self, address: str, user: User) -> None:
        await asyncio.to_thread(self._sessions.bind, address, user.id)
        stamp = getattr(user, "password_stamp", "")
        if stamp:  # a new password deletes bindings: one made just after, with the old one, goes too
            account = await asyncio.to_thread(self._users.current, user.id)
            if account is None or account.password_stamp != stamp:
                await asyncio.to_thread(self._sessions.unbind, address, user.id)

    async def user_at(self, address: str) -> User | None:
        user_id = await asyncio.to_thread(self._sessions.user_id_at, address)
        return None if user_id is None else await self._account(user_id)

    async def current(self, user: User) -> User | None:
        account = await self._account(user.id)
        stamp = getattr(user, "password_stamp", "")  # set on the accounts `login` gives out
        if account is None or (stamp and stamp != account.password_stamp):
            return None
        return account

    async def web_login(self, username: str, password: str, address: str) -> tuple[StampedUser, str] | None:
        """A browser login, with the checks of `login`: (the account, its new session's cookie token) for
        a right password, else None; BusyError when too many logins wait for a password check."""
        user = await self._checked_login(username, password, address)
        if user is None:
            return None
        token = await asyncio.to_thread(self._web_sessions.create, user.id, user.password_stamp)
        return user, token

    async def web_user(self, token: str) -> StampedUser | None:
        """The account of a browser session as it is now (VIP now), or None: no such session, expired,
        logged out, account disabled or gone, or a password changed since the session's login."""
        row = await asyncio.to_thread(self._web_sessions.get, token)
        if row is None:
            return None
        account = await self._account(row.user_id)
        if account is None or account.password_stamp != row.password_stamp:
            return None
        return account

    async def web_logout(self, token: str) -> None:
        await asyncio.to_thread(self._web_sessions.end, token)

    async def web_results(self, user: User, limit: int) -> list[WebResult]:
        """The user's stored results, newest first, at most `limit` (GET /api/results)."""
        return await asyncio.to_thread(results_of, self._db, user.id, limit)

    async def predictions_stored(self, user_id: int, hashed_name: str) -> bool | None:
        """None: no result `hashed_name` of the user; else whether it can be exported again."""
        return await asyncio.to_thread(predictions_stored, self._db, user_id, hashed_name)

    async def _account(self, user_id: int) -> StampedUser | None:
        """The account as read from the database at most `auth.account_recheck_s` ago."""
        now = time.monotonic()
        seen = self._accounts_seen.get(user_id)
        if seen is not None and now - seen[0] < self._recheck_s:
            return seen[1]
        user = await asyncio.to_thread(self._users.current, user_id)
        if len(self._accounts_seen) > MAX_ACCOUNTS_SEEN:
            self._accounts_seen.clear()
        self._accounts_seen[user_id] = (now, user)
        return user

    async def open_glb(self, hash_text: str) -> FileDownload:
        """The GLB of a share hash, opened for streaming (GET_GLB)."""
        return await asyncio.to_thread(self._glbs.open, hash_text)

    async def list_glbs(self, user: User, limit: int) -> list[GlbInfo]:
        return await asyncio.to_thread(self._glbs.list_for_user, user.id, limit)

    async def stored_result(
        self, user_id: int, source_digest: str, since: datetime | None = None
    ) -> Reconstruction | None:
        """The user's stored GLB computed from `source_digest` (stored at or after `since`, naive
        UTC, when given), or None: the result cache, and a retry's check for an earlier attempt's row."""

        def find() -> Reconstruction | None:
            hashed_name = self._glbs.find_by_digest(user_id, source_digest, since)
            if hashed_name is None:
                return None
            try:
                return Reconstruction(glb=self._glbs.read(hashed_name), hashed_name=hashed_name)
            except ServiceError:  # removed meanwhile: compute it again
                return None

        return await asyncio.to_thread(find)

    def close(self) -> None:
        self._db.dispose()


def _text(value: object) -> str | None:
    """A LOGIN field as the throttle keys it (None for a non-string)."""
    return value if isinstance(value, str) else None
