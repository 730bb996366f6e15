"""Sessions at their edges: the default IPv6 network of a binding, a connection with no LOGIN, dropping twice."""

from __future__ import annotations

import asyncio

from tcp_proxy.backend import User
from tcp_proxy.sessions import MemorySessionStore, Sessions

ALICE = User(1, "alice", False)


class RecordingStore(MemorySessionStore):
    """Counts the accounts it is asked about."""

    def __init__(self) -> None:
        super().__init__(60.0)
        self.asked: list = []

    async def current(self, user):
        self.asked.append(user)
        return user


def test_by_default_a_binding_covers_its_ipv6_slash_64():
    sessions = Sessions(MemorySessionStore(60.0))
    asyncio.run(sessions.login("c1", "2001:db8:1:2::1", ALICE))
    # the same /64, a different /65
    assert asyncio.run(sessions.user_for("c2", "2001:db8:1:2:8000::1")) == ALICE
    assert asyncio.run(sessions.user_for("c2", "2001:db8:1:3::1")) is None


def test_a_connection_without_its_own_login_asks_the_store_nothing():
    store = RecordingStore()
    sessions = Sessions(store)
    assert asyncio.run(sessions.connection_user("c1")) is None
    assert store.asked == []


def test_dropping_a_connection_that_never_logged_in_is_harmless():
    sessions = Sessions(MemorySessionStore(60.0))
    sessions.drop_connection("never")
    asyncio.run(sessions.login("c1", "10.0.0.1", ALICE))
    sessions.drop_connection("c1")
    sessions.drop_connection("c1")
    assert asyncio.run(sessions.connection_user("c1")) is None
