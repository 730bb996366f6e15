"""The PROXY protocol header (HAProxy's, versions 1 and 2) a TCP load balancer puts before the client's bytes.

Behind a balancer every connection comes from the balancer's address; the
header tells the client's real one, which sessions, the login throttle and
the per-address caps are keyed on. Only connections from the balancers
named in `proxy.proxy_protocol_from` must start with it (anyone else could
claim any address). No I/O here: `read_proxy_header` looks at the first
bytes of a connection.

A header must give a TCP client's IP address. LOCAL (v2) is the balancer's
own health check: it carries no client, and the server closes it without
serving anything. UNKNOWN (v1) and the v2 families that are not TCP over IP
(UDP, AF_UNIX, unspecified) are refused: serving them under the balancer's
address would put all such clients in one session, throttle and cap.

    v1: b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 4567\\r\\n"   (text, at most 107 bytes)
    v2: 12-byte signature, version/command, family, u16 length, addresses
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

V1_PREFIX = b"PROXY "
V1_MAX = 107
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER = struct.Struct(">12sBBH")
V2_FAMILIES = {0x11: 4, 0x21: 16}  # TCP over IPv4, IPv6 -> bytes of one address


class ProxyHeaderError(ValueError):
    """The connection did not start with a valid PROXY header."""


@dataclass(frozen=True)
class ProxyHeader:
    consumed: int  # bytes of the header, to drop before the protocol's own
    source: str | None  # the client's address; None for the balancer's health check (LOCAL)


def read_proxy_header(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`, or None when more bytes are needed; ProxyHeaderError if invalid."""
    if data.startswith(V2_SIGNATURE[: len(data)]) and len(data) < len(V2_SIGNATURE):
        return None
    if data.startswith(V2_SIGNATURE):
        return _read_v2(data)
    if data.startswith(V1_PREFIX[: len(data)]) and len(data) < len(V1_PREFIX):
        return None
    if data.startswith(V1_PREFIX):
        return _read_v1(data)
    raise ProxyHeaderError("the connection does not start with a PROXY header")


def parse_trusted(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`proxy.proxy_protocol_from`: comma-separated addresses or networks ("10.0.0.5, 10.1.0.0/16")."""
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"setting proxy.proxy_protocol_from: {exc}") from None


def is_trusted(address: str, trusted) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _read_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError("PROXY v1 header too long")
        return None
    fields = data[:end].decode("ascii", errors="replace").split(" ")
    if fields[1:2] == ["UNKNOWN"]:
        raise ProxyHeaderError("PROXY v1 header UNKNOWN: no client address")
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError("malformed PROXY v1 header")
    return ProxyHeader(end + 2, _address(fields[2]))


def _read_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < V2_HEADER.size:
        return None
    _, version_command, family, length = V2_HEADER.unpack_from(data)
    if version_command >> 4 != 2:
        raise ProxyHeaderError("unsupported PROXY header version")
    total = V2_HEADER.size + length
    if len(data) < total:
        return None
    command = version_command & 0x0F
    if command == 0:  # LOCAL: the balancer's own check
        return ProxyHeader(total, None)
    if command != 1:
        raise ProxyHeaderError(f"unknown PROXY v2 command {command}")
    if family not in V2_FAMILIES:
        raise ProxyHeaderError(f"PROXY v2 family 0x{family:02x} is not TCP over IP: no client address")
    size = V2_FAMILIES[family]
    if length < 2 * size + 4:
        raise ProxyHeaderError("PROXY v2 address block too short")
    raw = data[V2_HEADER.size : V2_HEADER.size + size]
    return ProxyHeader(total, str(ipaddress.ip_address(raw)))


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ProxyHeaderError(f"bad address in PROXY header: {text[:64]!r}") from None
