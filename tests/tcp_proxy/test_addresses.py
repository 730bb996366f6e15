"""Client keys: IPv4 per address, IPv6 per network of `proxy.ipv6_prefix_length` bits, over real sockets too."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct

import pytest
from proxy_fakes import (
    FakeBackend,
    frame,
    image_payload,
    login_payload,
    read_reconstruction,
    read_u32_block,
)
from proxy_serving import FAILED, OK_DEMO, async_test, read_login_reply, wait_for

from tcp_proxy.addresses import client_key, normalize_address
from tcp_proxy.codec import IMAGE, LOGIN
from tcp_proxy.server import start_server
from tcp_proxy.settings import ProxySettings

LOGIN_DEMO = frame(LOGIN, login_payload("demo", "123456"))
IMAGE_FRAME = frame(IMAGE, image_payload([b"one"]))


@pytest.mark.parametrize(
    "address, prefix, key",
    [
        ("2001:db8:1:2:a:b:c:d", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:a:b:c:d", 56, "2001:db8:1::/56"),
        ("2001:db8:1:2:a:b:c:d", 128, "2001:db8:1:2:a:b:c:d"),
        ("2001:DB8::1", 128, "2001:db8::1"),
        ("fe80::1%eth0", 64, "fe80::/64"),
        ("203.0.113.7", 64, "203.0.113.7"),
        ("203.0.113.7", 128, "203.0.113.7"),
        ("::ffff:203.0.113.7", 64, "203.0.113.7"),
        ("::ffff:203.0.113.7", 128, "203.0.113.7"),
        ("not an ip", 64, "not an ip"),
        ("", 64, ""),
    ],
)
def test_client_key(address, prefix, key):
    assert client_key(address, prefix) == key


def test_addresses_of_one_ipv6_network_share_a_key_and_others_do_not():
    assert client_key("2001:db8::1", 64) == client_key("2001:db8::ffff:1", 64)
    assert client_key("2001:db8::1", 64) != client_key("2001:db8:0:1::1", 64)
    assert client_key("2001:db8::1", 128) != client_key("2001:db8::2", 128)
    assert normalize_address("::ffff:10.0.0.1") == "10.0.0.1" and normalize_address("fe80::1%eth0") == "fe80::1"


def test_the_setting_is_bounded():
    assert ProxySettings().ipv6_prefix_length == 64
    with pytest.raises(ValueError, match="ipv6_prefix_length"):
        ProxySettings(ipv6_prefix_length=129)


def proxy_v2(source: str) -> bytes:
    """A PROXY v2 header from a balancer for a TCP client at IPv6 `source`."""
    block = ipaddress.ip_address(source).packed + bytes(16) + struct.pack(">HH", 51234, 4567)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x21]) + struct.pack(">H", len(block)) + block


@async_test
async def test_rotating_addresses_in_one_slash_64_share_the_per_address_cap():
    """Behind a balancer (PROXY headers give each client's address): two addresses of one /64 are one client."""
    settings = ProxySettings(host="127.0.0.1", port=0, proxy_protocol_from="127.0.0.1", max_connections_per_address=1)
    server = await start_server(settings, FakeBackend(), max_images=5)
    try:
        held_reader, held = await asyncio.open_connection("127.0.0.1", server.port)
        held.write(proxy_v2("2001:db8:1:2::a") + LOGIN_DEMO)
        assert await read_login_reply(held_reader) == OK_DEMO  # the /64's one connection, open
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(proxy_v2("2001:db8:1:2::b") + LOGIN_DEMO)  # the same subscriber, another address
        assert await read_login_reply(reader) == FAILED  # ERROR_BUSY in LOGIN's shape
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(proxy_v2("2001:db8:1:3::a") + LOGIN_DEMO)  # another /64: another client
        assert await read_login_reply(reader) == OK_DEMO
        writer.close()
        held.close()
    finally:
        await server.close()


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
@async_test
async def test_over_ipv6_loopback_the_binding_and_the_cap_hold_per_client_key():
    backend = FakeBackend()
    settings = ProxySettings(host="::1", port=0, max_connections_per_address=2)
    server = await start_server(settings, backend, max_images=5)
    try:
        reader, writer = await asyncio.open_connection("::1", server.port)
        writer.write(LOGIN_DEMO)
        assert await read_login_reply(reader) == OK_DEMO
        writer.close()
        assert backend.logins[-1] == ("demo", "::1")
        reader, writer = await asyncio.open_connection("::1", server.port)
        writer.write(IMAGE_FRAME)  # no LOGIN here: the binding of ::1's network
        name, _ = await read_reconstruction(reader)
        assert name.endswith(".glb")
        _, first = await asyncio.open_connection("::1", server.port)
        await wait_for(lambda: server.active_connections == 2)
        reader, third = await asyncio.open_connection("::1", server.port)
        third.write(frame(4, b"0" * 64))  # over the cap of 2 from ::1: GET_GLB answered busy
        assert await read_u32_block(reader) == b"ERROR_BUSY"
        for w in (writer, first, third):
            w.close()
    finally:
        await server.close()
