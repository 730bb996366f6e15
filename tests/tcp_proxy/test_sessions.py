"""Sessions: connection logins, address bindings with an absolute time to live, current accounts."""

from __future__ import annotations

import asyncio

from tcp_proxy.addresses import normalize_address
from tcp_proxy.backend import User
from tcp_proxy.sessions import MemorySessionStore, Sessions
from clock import Clock

ALICE = User(1, "alice", False)
BOB = User(2, "bob", True)


class Driver:
    """Sessions over a MemorySessionStore with a settable clock, called synchronously."""

    def __init__(self, ttl_s: float = 60.0, bind_to_address: bool = True, ipv6_prefix_length: int = 64) -> None:
        self.clock = Clock(1000.0)
        self.store = MemorySessionStore(ttl_s, clock=self.clock)
        self.sessions = Sessions(self.store, bind_to_address=bind_to_address, ipv6_prefix_length=ipv6_prefix_length)

    def login(self, connection, address, user):
        asyncio.run(self.sessions.login(connection, address, user))

    def user_for(self, connection, address):
        return asyncio.run(self.sessions.user_for(connection, address))


def test_connection_login_holds_for_that_connection():
    t = Driver(bind_to_address=False)
    t.login("c1", "10.0.0.1", ALICE)
    assert t.user_for("c1", "10.0.0.1") == ALICE
    assert t.user_for("c2", "10.0.0.1") is None  # binding off: a new connection is anonymous
    t.sessions.drop_connection("c1")
    assert t.user_for("c1", "10.0.0.1") is None


def test_address_binding_ends_a_fixed_time_after_login_however_often_used():
    t = Driver(ttl_s=60)
    t.login("c1", "10.0.0.1", ALICE)
    t.sessions.drop_connection("c1")
    for _ in range(5):  # use every 11 s does not push the end out
        t.clock.now += 11
        assert t.user_for("c2", "10.0.0.1") == ALICE
    assert t.user_for("c2", "10.0.0.2") is None
    t.clock.now += 5  # 60 s after the LOGIN
    assert t.user_for("c3", "10.0.0.1") is None


def test_a_new_login_starts_a_new_time_to_live():
    t = Driver(ttl_s=60)
    t.login("c1", "10.0.0.1", ALICE)
    t.clock.now += 50
    t.login("c2", "10.0.0.1", ALICE)
    t.clock.now += 50
    assert t.user_for("c3", "10.0.0.1") == ALICE


def test_connection_login_outlives_the_address_ttl():
    t = Driver()
    t.login("c1", "10.0.0.1", ALICE)
    t.clock.now += 3600
    assert t.user_for("c1", "10.0.0.1") == ALICE
    assert t.user_for("c2", "10.0.0.1") is None


def test_later_login_from_same_address_rebinds():
    t = Driver()
    t.login("c1", "10.0.0.1", ALICE)
    t.login("c2", "10.0.0.1", BOB)  # e.g. two phones behind one NAT
    assert t.user_for("c1", "10.0.0.1") == ALICE  # its own connection login wins
    assert t.user_for("c3", "10.0.0.1") == BOB


def test_ipv4_mapped_addresses_match_plain_ipv4():
    t = Driver()
    t.login("c1", "::ffff:10.0.0.1", ALICE)
    assert t.user_for("c2", "10.0.0.1") == ALICE
    assert normalize_address("fe80::1%eth0") == "fe80::1"
    assert normalize_address("not an ip") == "not an ip"


def test_an_ipv6_binding_holds_for_its_network():
    t = Driver()  # a /64 per client
    t.login("c1", "2001:db8:1:2::a", ALICE)
    assert t.user_for("c2", "2001:db8:1:2:ffff::1") == ALICE  # a privacy address of the same subscriber
    assert t.user_for("c3", "2001:db8:1:3::a") is None
    assert list(t.store._by_address) == ["2001:db8:1:2::/64"]
    exact = Driver(ipv6_prefix_length=128)
    exact.login("c1", "2001:db8:1:2::a", ALICE)
    assert exact.user_for("c2", "2001:db8:1:2::b") is None


def test_connection_user_ignores_the_address_binding():
    t = Driver()
    t.login("c1", "10.0.0.1", ALICE)
    assert asyncio.run(t.sessions.connection_user("c1")) == ALICE
    assert t.user_for("c2", "10.0.0.1") == ALICE  # IMAGE/VIDEO through the binding
    assert asyncio.run(t.sessions.connection_user("c2")) is None  # LIST: a LOGIN of its own only


def test_expired_bindings_are_dropped_when_another_is_made():
    t = Driver(ttl_s=10)
    for i in range(5):
        t.login(f"c{i}", f"10.0.0.{i}", ALICE)
    t.clock.now += 11
    t.login("x", "10.0.1.1", BOB)
    assert list(t.store._by_address) == ["10.0.1.1"]


class ChangingAccounts(MemorySessionStore):
    """A store whose accounts can be disabled or lose VIP, as the database's can."""

    def __init__(self) -> None:
        super().__init__(60.0)
        self.accounts: dict[int, User | None] = {}

    async def user_at(self, address: str) -> User | None:
        user = await super().user_at(address)
        return None if user is None else await self.current(user)

    async def current(self, user: User) -> User | None:
        return self.accounts.get(user.id, user)


def test_sessions_act_as_the_account_as_it_is_now():
    store = ChangingAccounts()
    sessions = Sessions(store)
    asyncio.run(sessions.login("c1", "10.0.0.1", BOB))
    store.accounts[BOB.id] = User(BOB.id, "bob", is_vip=False)  # VIP taken away after LOGIN
    assert asyncio.run(sessions.user_for("c1", "10.0.0.1")).is_vip is False
    assert asyncio.run(sessions.user_for("c2", "10.0.0.1")).is_vip is False
    store.accounts[BOB.id] = None  # disabled
    assert asyncio.run(sessions.user_for("c1", "10.0.0.1")) is None
    assert asyncio.run(sessions.user_for("c2", "10.0.0.1")) is None
