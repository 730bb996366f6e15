"""Accounts: LOGIN and GET_GLB against a real SQLite database and storage root."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serve_app.accounts import LOGIN_CONCURRENCY, Accounts
from serve_app.config import AppSettings
from serve_app.storage import Database, GlbStore, UserStore
from tcp_proxy.backend import User
from tcp_proxy.errors import HashNotFoundError, InvalidHashError


@pytest.fixture
def settings(tmp_path) -> AppSettings:
    return AppSettings.from_dict(
        {"storage": {"database_url": f"sqlite:///{tmp_path / 'app.db'}", "storage_root": str(tmp_path / "root")}}
    )


def test_open_creates_the_schema_and_logins_work(settings):
    async def scenario():
        accounts = await Accounts.open(settings)
        db = Database(settings.storage.database_url)
        try:
            created = UserStore(db, settings.auth).create("alice", "secret", is_vip=True)
            assert await accounts.login("alice", "secret", "192.0.2.1") == User(created.id, "alice", True)
            assert await accounts.login("alice", "wrong", "192.0.2.1") is None
            assert await accounts.login("nobody", "secret", "192.0.2.1") is None
            stored = GlbStore(db, settings.storage.storage_root).save(b"glTF-bytes", created.id, "x")
            download = await accounts.open_glb(f" {stored.hashed_name}.glb\n")
            assert download.size == 10 and await download.read(4) == b"glTF" and await download.read(99) == b"-bytes"
            await download.close()
            with pytest.raises(HashNotFoundError):
                await accounts.open_glb("0" * 64)
            with pytest.raises(InvalidHashError):
                await accounts.open_glb("../etc/passwd")
        finally:
            db.dispose()
            accounts.close()

    asyncio.run(scenario())


def test_password_checks_run_at_most_login_concurrency_at_once(settings):
    async def scenario():
        accounts = await Accounts.open(settings)
        check = accounts._users.authenticate
        lock, running, most = threading.Lock(), [0], [0]

        def counting(*args):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                return check(*args)
            finally:
                with lock:
                    running[0] -= 1

        accounts._users.authenticate = counting
        try:
            results = await asyncio.gather(*(accounts.login(f"u{i}", "pw", "192.0.2.2") for i in range(6)))
        finally:
            accounts.close()
        return results, most[0]

    results, most = asyncio.run(scenario())
    assert results == [None] * 6
    assert most == LOGIN_CONCURRENCY


def test_sessions_are_in_the_database_and_follow_the_account(settings):
    """Accounts as the TCP server's SessionStore: a binding made by one process is seen by
    another (a restarted replica), and a disabled account or lost VIP shows within the recheck time."""
    settings = AppSettings.from_dict({**_as_dict(settings), "auth": {"account_recheck_s": 0.0}})

    async def scenario():
        first, second = await Accounts.open(settings), await Accounts.open(settings)
        db = Database(settings.storage.database_url)
        users = UserStore(db, settings.auth)
        try:
            bob = users.create("bob", "pw", is_vip=True)
            assert await first.login("bob", "pw", "192.0.2.7") == bob
            await first.bind_address("192.0.2.7", bob)
            assert await second.user_at("192.0.2.7") == bob
            assert await second.user_at("192.0.2.8") is None
            users.set_vip("bob", False)
            assert await second.user_at("192.0.2.7") == User(bob.id, "bob", False)
            assert await first.current(bob) == User(bob.id, "bob", False)
            users.set_status("bob", active=False)
            assert await second.user_at("192.0.2.7") is None
            assert await first.current(bob) is None
        finally:
            db.dispose()
            first.close()
            second.close()

    asyncio.run(scenario())


def test_account_reads_are_cached_for_the_recheck_time(settings):
    async def scenario():
        accounts = await Accounts.open(settings)  # account_recheck_s: 5 s by default
        db = Database(settings.storage.database_url)
        users = UserStore(db, settings.auth)
        try:
            bob = users.create("bob", "pw", is_vip=True)
            assert await accounts.current(bob) == bob
            users.set_status("bob", active=False)
            assert await accounts.current(bob) == bob  # read less than 5 s ago
            accounts._accounts_seen[bob.id] = (0.0, bob)  # as if read long ago
            assert await accounts.current(bob) is None
        finally:
            db.dispose()
            accounts.close()

    asyncio.run(scenario())


def test_a_throttled_login_does_not_wait_for_a_verification_slot(settings):
    async def scenario():
        accounts = await Accounts.open(settings)
        try:
            for name in ("a", "b", "c", "d", "e"):  # auth.max_failures from one address
                assert await accounts.login(name, "guess", "192.0.2.9") is None
            for _ in range(LOGIN_CONCURRENCY):  # every slot busy, as under a flood
                await accounts._login_slots.acquire()
            answer = await asyncio.wait_for(accounts.login("f", "guess", "192.0.2.9"), 2)
            assert answer is None
        finally:
            accounts.close()

    asyncio.run(scenario())


def _as_dict(settings: AppSettings) -> dict:
    return {"storage": {"database_url": settings.storage.database_url, "storage_root": settings.storage.storage_root}}
