"""Accounts: LOGIN, sessions and GET_GLB against a real SQLite database and storage root."""

from __future__ import annotations

import asyncio
import threading

import pytest
from proxy_fakes import (
    FakeBackend,
    frame,
    image_payload,
    login_payload,
    read_reconstruction,
    read_u32_block,
)
from sqlalchemy import text

from serve_app.accounts import LOGIN_CONCURRENCY, Accounts
from serve_app.config import AppSettings
from serve_app.storage import Database, GlbStore, UserStore
from tcp_proxy.backend import User
from tcp_proxy.codec import IMAGE, LOGIN
from tcp_proxy.errors import HashNotFoundError, InvalidHashError
from tcp_proxy.server import start_server
from tcp_proxy.sessions import Sessions
from tcp_proxy.settings import ProxySettings


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


def _settings_with(settings: AppSettings, **sections) -> AppSettings:
    return AppSettings.from_dict({**_as_dict(settings), **sections})


def test_failed_logins_across_one_ipv6_network_lock_it(settings):
    """Rotating addresses inside one /64 is one client for the login throttle."""

    async def scenario():
        accounts = await Accounts.open(settings)
        db = Database(settings.storage.database_url)
        try:
            UserStore(db, settings.auth).create("alice", "secret")
            for i in range(settings.auth.max_failures):  # each guess from another address of the /64
                assert await accounts.login(f"guess{i}", "guess", f"2001:db8:1:2::{i + 1:x}") is None
            assert await accounts.login("alice", "secret", "2001:db8:1:2:ffff::9") is None  # the /64 is locked
            assert await accounts.login("alice", "secret", "2001:db8:1:3::1") is not None  # another /64 is not
        finally:
            db.dispose()
            accounts.close()

    asyncio.run(scenario())


def test_logins_over_the_queue_bound_are_refused_at_once(settings):
    settings = _settings_with(settings, auth={"max_login_queue": 1})

    async def scenario():
        accounts = await Accounts.open(settings)
        release = threading.Event()
        checked = []

        def slow_check(username, password, address):
            checked.append(username)
            release.wait(60)

        accounts._users.authenticate = slow_check
        try:
            held = [asyncio.create_task(accounts.login(f"u{i}", "pw", f"192.0.2.{i}")) for i in range(LOGIN_CONCURRENCY + 1)]
            deadline = asyncio.get_running_loop().time() + 30
            while not (len(checked) == LOGIN_CONCURRENCY and accounts._logins.full):  # two checked, one waiting
                assert asyncio.get_running_loop().time() < deadline, (checked, accounts._logins.full)
                await asyncio.sleep(0.01)
            # refused while the checks ahead are still held: a queued LOGIN would wait for their release
            assert await asyncio.wait_for(accounts.login("late", "pw", "192.0.2.99"), 30) is None
            assert "late" not in checked and not release.is_set()
            release.set()
            assert await asyncio.gather(*held) == [None] * (LOGIN_CONCURRENCY + 1)
            assert len(checked) == LOGIN_CONCURRENCY + 1
            later = User(99, "later", False)
            accounts._users.authenticate = lambda *args: later
            assert await accounts.login("later", "pw", "192.0.2.99") == later  # the queue is free again
        finally:
            release.set()
            accounts.close()

    asyncio.run(scenario())


def test_a_password_change_ends_connection_logins_and_address_bindings(settings):
    settings = _settings_with(settings, auth={"account_recheck_s": 0.0})

    async def scenario():
        accounts = await Accounts.open(settings)
        db = Database(settings.storage.database_url)
        users = UserStore(db, settings.auth)
        sessions = Sessions(accounts)
        try:
            bob = users.create("bob", "old")
            users.create("carol", "pw")
            await sessions.login("c1", "192.0.2.7", await accounts.login("bob", "old", "192.0.2.7"))
            await sessions.login("c2", "192.0.2.8", await accounts.login("carol", "pw", "192.0.2.8"))
            assert await sessions.user_for("c1", "192.0.2.7") == bob
            assert await sessions.user_for("c9", "192.0.2.7") == bob  # another connection, by the binding
            users.set_password("bob", "new")
            assert await sessions.user_for("c1", "192.0.2.7") is None
            assert await sessions.user_for("c9", "192.0.2.7") is None
            assert (await sessions.user_for("c2", "192.0.2.8")).username == "carol"  # others keep theirs
            assert await sessions.user_for("c9", "192.0.2.8") is not None
            await sessions.login("c3", "192.0.2.7", await accounts.login("bob", "new", "192.0.2.7"))
            assert await sessions.user_for("c3", "192.0.2.7") == bob
            assert await sessions.user_for("c9", "192.0.2.7") == bob
            assert await sessions.user_for("c1", "192.0.2.7") is None  # the old login stays ended
        finally:
            db.dispose()
            accounts.close()

    asyncio.run(scenario())


def test_a_binding_made_after_the_change_by_a_login_before_it_does_not_hold(settings):
    async def scenario():
        accounts = await Accounts.open(settings)
        db = Database(settings.storage.database_url)
        users = UserStore(db, settings.auth)
        try:
            users.create("bob", "old")
            checked_before = await accounts.login("bob", "old", "192.0.2.7")
            users.set_password("bob", "new")  # lands between the password check and the binding
            await accounts.bind_address("192.0.2.7", checked_before)
            assert await accounts.user_at("192.0.2.7") is None
        finally:
            db.dispose()
            accounts.close()

    asyncio.run(scenario())


def test_a_legacy_hash_rewritten_at_login_keeps_that_login(settings):
    settings = _settings_with(settings, auth={"account_recheck_s": 0.0})

    async def scenario():
        accounts = await Accounts.open(settings)
        db = Database(settings.storage.database_url)
        try:
            UserStore(db, settings.auth).create("dave", "pw")
            with db.session() as session:
                session.execute(text("UPDATE users SET password_hash = 'pw' WHERE username = 'dave'"))
            dave = await accounts.login("dave", "pw", "192.0.2.5")
            await accounts.bind_address("192.0.2.5", dave)
            assert await accounts.current(dave) == dave
            assert await accounts.user_at("192.0.2.5") == dave
        finally:
            db.dispose()
            accounts.close()

    asyncio.run(scenario())


def test_a_password_change_ends_a_login_over_real_sockets(settings):
    settings = _settings_with(settings, auth={"account_recheck_s": 0.0})

    class AccountsBackend(FakeBackend):
        def __init__(self, accounts: Accounts) -> None:
            super().__init__()
            self.accounts = accounts

        async def login(self, username, password, address):
            return await self.accounts.login(username, password, address)

    async def scenario():
        accounts = await Accounts.open(settings)
        db = Database(settings.storage.database_url)
        users = UserStore(db, settings.auth)
        users.create("bob", "old")
        server = await start_server(
            ProxySettings(host="127.0.0.1", port=0), AccountsBackend(accounts), max_images=5, port=0, sessions=accounts
        )
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(frame(LOGIN, login_payload("bob", "old")) + image)
            assert await read_u32_block(reader) == b"[true,false]"
            assert (await read_reconstruction(reader))[0].endswith(".glb")
            assert (await _one_image(server.port))[0].endswith(".glb")  # by the address binding
            users.set_password("bob", "new")
            writer.write(image)
            assert await read_reconstruction(reader) == ("", b"ERROR_NOT_LOGGED_IN")
            assert await _one_image(server.port) == ("", b"ERROR_NOT_LOGGED_IN")
            writer.write(frame(LOGIN, login_payload("bob", "new")) + image)
            assert await read_u32_block(reader) == b"[true,false]"
            assert (await read_reconstruction(reader))[0].endswith(".glb")
            writer.close()
        finally:
            await server.close()
            db.dispose()
            accounts.close()

    image = frame(IMAGE, image_payload([b"photo"]))
    asyncio.run(asyncio.wait_for(scenario(), 60))


async def _one_image(port: int) -> tuple[str, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame(IMAGE, image_payload([b"photo"])))
    reply = await read_reconstruction(reader)
    writer.close()
    return reply
