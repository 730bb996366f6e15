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
            assert await accounts.get_glb(f" {stored.hashed_name}.glb\n") == b"glTF-bytes"
            with pytest.raises(HashNotFoundError):
                await accounts.get_glb("0" * 64)
            with pytest.raises(InvalidHashError):
                await accounts.get_glb("../etc/passwd")
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
