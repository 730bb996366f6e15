"""Who a client is, as far as its address tells: the key of caps, login throttling and address sessions.

An IPv4 client is its address. An IPv6 client is the network of
`ipv6_prefix_length` bits around its address (`proxy.ipv6_prefix_length`):
one subscriber is usually given a whole /64 and may use any address in it
(privacy addresses rotate by themselves), so keying on the full address
would let one client pass for many.

    client_key("203.0.113.7", 64)            -> "203.0.113.7"
    client_key("::ffff:203.0.113.7", 64)     -> "203.0.113.7"
    client_key("2001:db8:1:2:a:b:c:d", 64)   -> "2001:db8:1:2::/64"
    client_key("2001:db8:1:2:a:b:c:d", 128)  -> "2001:db8:1:2:a:b:c:d"
"""

from __future__ import annotations

import ipaddress


def normalize_address(address: str) -> str:
    """The client's IP as text; IPv4-mapped IPv6 addresses become plain IPv4, a zone (`%eth0`) is dropped."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def client_key(address: str, ipv6_prefix_length: int) -> str:
    """The key a client at `address` is counted and bound under (text that is not an IP is its own key)."""
    plain = normalize_address(address)
    try:
        ip = ipaddress.ip_address(plain)
    except ValueError:
        return plain
    if ip.version == 4 or ipv6_prefix_length >= 128:
        return plain
    return str(ipaddress.IPv6Network((ip, ipv6_prefix_length), strict=False))
