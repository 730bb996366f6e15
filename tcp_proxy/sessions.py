"""Who is logged in: per connection, and (optionally) per client address.

A successful LOGIN binds its user to the connection for the connection's
life. Because the Android app opens a new connection for every request, the
login is also bound to the client's IP address: a later connection from that
address that sends no LOGIN of its own acts as that user. The address binding
ends `ttl_s` after the LOGIN that made it (use does not extend it), and it
can be switched off (`bind_to_address=False`).

Bindings are kept by a `SessionStore`: the service keeps them in its
database (`serve_app.accounts.Accounts`), so they survive a restart and every
replica sees them; `MemorySessionStore` keeps them in this process. The store
also answers who a user is *now*: a disabled account stops acting within
seconds, and VIP is the current account's.

Risk: the address is all that identifies such a client. Clients behind one
NAT (a carrier-grade NAT, an office or a public Wi-Fi) share an address, so
any of them can upload as the last user who logged in from it, until the
binding expires or someone else logs in there. Only turn it off once the
deployed clients log in on every connection. A failed LOGIN never clears a
binding (neither the connection's nor the address's).
"""

from __future__ import annotations

import ipaddress
import time
from typing import Callable, Hashable, Protocol

from .backend import User


def normalize_address(address: str) -> str:
    """The client's IP as text; IPv4-mapped IPv6 addresses become plain IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


class SessionStore(Protocol):
    """Address bindings with an absolute expiry, and the current state of accounts."""

    async def bind_address(self, address: str, user: User) -> None:
        """Bind `address` to `user` from now for the store's time to live, replacing any binding."""

    async def user_at(self, address: str) -> User | None:
        """The user bound to `address`, as the account is now; None if unbound, expired or disabled."""

    async def current(self, user: User) -> User | None:
        """`user` as the account is now (VIP re-read); None if it was disabled or removed."""


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

    def __init__(self, store: SessionStore, *, bind_to_address: bool = True):
        self.store = store
        self.bind_to_address = bind_to_address
        self._by_connection: dict[Hashable, User] = {}

    async def login(self, connection: Hashable, address: str, user: User) -> None:
        """Record a successful LOGIN on `connection` from `address`."""
        self._by_connection[connection] = user
        if self.bind_to_address:
            await self.store.bind_address(normalize_address(address), user)

    async def user_for(self, connection: Hashable, address: str) -> User | None:
        """The user a request on `connection` from `address` acts as (the account as it is now), or None."""
        user = self._by_connection.get(connection)
        if user is not None:
            return await self.store.current(user)
        if not self.bind_to_address:
            return None
        return await self.store.user_at(normalize_address(address))

    def drop_connection(self, connection: Hashable) -> None:
        """Forget the connection's own login (the address binding stays)."""
        self._by_connection.pop(connection, None)
