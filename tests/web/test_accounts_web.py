"""Browser logins through `Accounts`: the same checks as LOGIN, and the account re-read on every use."""

from __future__ import annotations

import asyncio

import pytest

from serve_app.accounts import Accounts
from serve_app.config import AppSettings
from serve_app.storage import Database, UserStore
from tcp_proxy.errors import BusyError


@pytest.fixture
def settings(tmp_path) -> AppSettings:
    return AppSettings.from_dict(
        {
            "storage": {"database_url": f"sqlite:///{tmp_path / 'app.db'}", "storage_root": str(tmp_path / "root")},
            "auth": {"account_recheck_s": 0},  # every use re-reads the account
        }
    )


def scenario(settings: AppSettings, body) -> None:
    async def run():
        accounts = await Accounts.open(settings)
        db = Database(settings.storage.database_url)
        try:
            await body(accounts, UserStore(db, settings.auth))
        finally:
            accounts.close()
            db.dispose()

    asyncio.run(run())


def test_a_web_login_gives_a_session_that_follows_the_account(settings):
    async def body(accounts: Accounts, users: UserStore):
        users.create("alice", "secret")
        assert await accounts.web_login("alice", "wrong", "192.0.2.1") is None
        assert await accounts.web_login("nobody", "secret", "192.0.2.1") is None
        _, token = await accounts.web_login("alice", "secret", "192.0.2.1")
        assert (await accounts.web_user(token)).username == "alice"
        assert not (await accounts.web_user(token)).is_vip
        users.set_vip("alice", True)
        assert (await accounts.web_user(token)).is_vip  # VIP as it is now
        users.set_status("alice", False)
        assert await accounts.web_user(token) is None  # disabled
        users.set_status("alice", True)
        assert await accounts.web_user(token) is not None
        users.set_password("alice", "new-secret")
        assert await accounts.web_user(token) is None  # logged in with the old password
        _, fresh = await accounts.web_login("alice", "new-secret", "192.0.2.1")
        assert await accounts.web_user(fresh) is not None
        await accounts.web_logout(fresh)
        assert await accounts.web_user(fresh) is None

    scenario(settings, body)


def test_web_logins_share_the_login_throttle(settings):
    async def body(accounts: Accounts, users: UserStore):
        users.create("alice", "secret")
        for _ in range(settings.auth.max_failures):
            assert await accounts.login("alice", "wrong", "192.0.2.9") is None  # over TCP
        assert await accounts.web_login("alice", "secret", "192.0.2.9") is None  # throttled here too

    scenario(settings, body)


def test_a_full_login_queue_is_busy_for_the_browser_and_a_failure_for_tcp(settings):
    async def body(accounts: Accounts, users: UserStore):
        users.create("alice", "secret")
        accounts._logins.in_use = accounts._logins.maximum  # every place in the queue taken
        with pytest.raises(BusyError):
            await accounts.web_login("alice", "secret", "192.0.2.1")
        assert await accounts.login("alice", "secret", "192.0.2.1") is None
        accounts._logins.in_use = 0
        assert await accounts.web_login("alice", "secret", "192.0.2.1") is not None

    scenario(settings, body)
