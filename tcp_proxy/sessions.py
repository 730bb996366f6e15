"""Who is logged in: per connection, and (optionally) per client address.

A successful LOGIN binds its user to the connection for the connection's
life. Because the Android app opens a new connection for every request, the
login is also bound to the client's address key (`addresses.client_key`: the
IPv4 address, or the IPv6 network of `ipv6_prefix_length` bits): a later
connection from there that sends no LOGIN of its own acts as that user for
IMAGE and VIDEO. The address binding ends `ttl_s` after the LOGIN that made
it (use does not extend it), and it can be switched off
(`bind_to_address=False`). LIST answers only a LOGIN on its own connection
(`connection_user`): the stored results of a user are not for whoever shares
their address.

Bindings are kept by a `SessionStore`: the service keeps them in its
database (`serve_app.accounts.Accounts`), so they survive a restart and every
replica sees them; `MemorySessionStore` keeps them in this process. The store
also answers who a user is *now*: a disabled account, or one whose password
changed, stops acting within seconds, and VIP is the current account's.

Risk: the address is all that identifies such a client. Clients behind one
NAT (a carrier-grade NAT, an office or a public Wi-Fi) share an address, so
any of them can upload as the last user who logged in from it, until the
binding expires or someone else logs in there. Only turn it off once the
deployed clients log in on every connection. A failed LOGIN never clears a
binding (neither the connection's nor the address's).
"""

from __future__ import annotations

import time
from typing import Callable, Hashable, Protocol

from .addresses import client_key
from .backend import User


class SessionStore(Protocol):
    """Address bindings with an absolute expiry, and the current state of accounts."""

    async def bind_address(self, address: str, user: User) -> None:
        """Bind `address` to `user` from now for the store's time to live, replacing any binding."""

    async def user_at(self, address: str) -> User | None:
        """The user bound to `address`, as the account is now; None if unbound, expired or disabled."""

    async def current(self, user: User) -> User | None:
        """`user` as the account is now (VIP re-read); None if it was disabled or removed, or its
        password changed since the LOGIN that gave `user`."""


class MemorySessionStore:
    """A SessionStore in this process: bindings end with it, accounts never change."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self._clock = clock
        self._by_address: dict[str, tuple[User, float]] = {}  # address -> (user, expires at)

    async def bind_address(self, address: str, user: User) -> None:
        now = self._clock()
        self._by_address = {a: e for a, e in self._by_address.items() if e[1] > now}  # drop expired ones
        self._by_address[address] = (user, now + self.ttl_s)

    async def user_at(self, address: str) -> User | None:
        entry = self._by_address.get(address)
        if entry is None or entry[1] <= self._clock():
            return None
        return entry[0]

    async def current(self, user: User) -> User | None:
        return user


class Sessions:
    """Connection logins in memory, address bindings in a `SessionStore`."""

    def __init__(self, store: SessionStore, *, bind_to_address: bool = True, ipv6_prefix_length: int = 64):
        self.store = store
        self.bind_to_address = bind_to_address
        self.ipv6_prefix_length = ipv6_prefix_length
        self._by_connection: dict[Hashable, User] = {}

    async def login(self, connection: Hashable, address: str, user: User) -> None:
        """Record a successful LOGIN on `connection` from `address`."""
        self._by_connection[connection] = user
        if self.bind_to_address:
            await self.store.bind_address(client_key(address, self.ipv6_prefix_length), user)

    async def user_for(self, connection: Hashable, address: str) -> User | None:
        """The user an IMAGE/VIDEO on `connection` from `address` acts as (the account as it is now), or None."""
        user = self._by_connection.get(connection)
        if user is not None:
            return await self.store.current(user)
        if not self.bind_to_address:
            return None
        return await self.store.user_at(client_key(address, self.ipv6_prefix_length))

    async def connection_user(self, connection: Hashable) -> User | None:
        """The user of the connection's own LOGIN (the account as it is now), or None: the address binding
        does not count."""
        user = self._by_connection.get(connection)
        return None if user is None else await self.store.current(user)

    def drop_connection(self, connection: Hashable) -> None:
        """Forget the connection's own login (the address binding stays)."""
        self._by_connection.pop(connection, None)
