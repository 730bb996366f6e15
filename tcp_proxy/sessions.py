"""Who is logged in: per connection, and (optionally) per client address.

A successful LOGIN binds its user to the connection for the connection's
life. Because the Android app opens a new connection for every request, the
login is also bound to the client's IP address: a later connection from that
address that sends no LOGIN of its own acts as that user. The address binding
expires `ttl_s` after the last LOGIN or the last request it authenticated
(a sliding window), and it can be switched off (`bind_to_address=False`).

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
from typing import Callable, Hashable

from .backend import User


def normalize_address(address: str) -> str:
    """The client's IP as text; IPv4-mapped IPv6 addresses become plain IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


class SessionTable:
    """Logins by connection key and, with a time to live, by client address."""

    def __init__(self, *, ttl_s: float, bind_to_address: bool = True, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.bind_to_address = bind_to_address
        self._clock = clock
        self._by_connection: dict[Hashable, User] = {}
        self._by_address: dict[str, tuple[User, float]] = {}  # address -> (user, expires at)

    def login(self, connection: Hashable, address: str, user: User) -> None:
        """Record a successful LOGIN on `connection` from `address`."""
        self._by_connection[connection] = user
        if self.bind_to_address:
            now = self._clock()
            self._purge(now)
            self._by_address[normalize_address(address)] = (user, now + self.ttl_s)

    def user_for(self, connection: Hashable, address: str) -> User | None:
        """The user a request on `connection` from `address` acts as, or None."""
        user = self._by_connection.get(connection)
        if user is not None or not self.bind_to_address:
            return user
        key = normalize_address(address)
        entry = self._by_address.get(key)
        if entry is None:
            return None
        now = self._clock()
        user, expires = entry
        if now >= expires:
            del self._by_address[key]
            return None
        self._by_address[key] = (user, now + self.ttl_s)
        return user

    def drop_connection(self, connection: Hashable) -> None:
        """Forget the connection's own login (the address binding stays)."""
        self._by_connection.pop(connection, None)

    @property
    def bound_addresses(self) -> int:
        """How many address bindings are live now."""
        self._purge(self._clock())
        return len(self._by_address)

    def _purge(self, now: float) -> None:
        expired = [a for a, (_, expires) in self._by_address.items() if now >= expires]
        for address in expired:
            del self._by_address[address]
