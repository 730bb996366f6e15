"""PROXY protocol headers from trusted balancers: parsing, and the client address they give the server."""

from __future__ import annotations

import asyncio
import ipaddress
import struct

import pytest
from proxy_fakes import FakeBackend, frame, login_payload
from proxy_serving import wait_for

from tcp_proxy.codec import LOGIN
from tcp_proxy.proxy_protocol import ProxyHeader, ProxyHeaderError, is_trusted, parse_trusted, read_proxy_header
from tcp_proxy.server import OVERFLOW_HEADER_WAIT_S, start_server
from tcp_proxy.settings import ProxySettings

V1 = b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 4567\r\n"


def v2(source: str, command: int = 0x21) -> bytes:
    ip = ipaddress.ip_address(source)
    family, size = (0x11, 4) if ip.version == 4 else (0x21, 16)
    block = ip.packed + bytes(size) + struct.pack(">HH", 51234, 4567)
    return v2_raw(command, family, block)


def v2_raw(command: int, family: int, block: bytes) -> bytes:
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, family]) + struct.pack(">H", len(block)) + block


V2_UNIX = v2_raw(0x21, 0x31, b"/run/client.sock".ljust(108, b"\0") + b"/run/server.sock".ljust(108, b"\0"))
V2_UNSPEC = v2_raw(0x21, 0x00, b"")


def test_version_1_and_2_give_the_client_address():
    assert read_proxy_header(V1 + b"\x01rest") == ProxyHeader(len(V1), "203.0.113.7")
    header = v2("2001:db8::7")
    assert read_proxy_header(header + b"\x01") == ProxyHeader(len(header), "2001:db8::7")
    assert read_proxy_header(v2("10.0.0.1", command=0x20)).source is None  # LOCAL: the balancer's check


@pytest.mark.parametrize(
    "header",
    [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", V2_UNIX, V2_UNSPEC, v2("10.0.0.1", command=0x22)],
)
def test_a_header_without_a_client_address_is_refused(header):
    with pytest.raises(ProxyHeaderError):
        read_proxy_header(header + b"\x01")


@pytest.mark.parametrize("cut", [1, 5, 12, 15, 20])
def test_a_partial_header_needs_more(cut):
    assert read_proxy_header((V1 if cut < 20 else v2("10.0.0.1"))[:cut]) is None


@pytest.mark.parametrize(
    "data",
    [b"\x01\x00\x00\x00\x05hello", b"PROXY TCP4 nonsense\r\n", b"PROXY TCP4 " + b"1" * 120, b"PROXY TCP4 x.y 1.2.3.4 1 2\r\n"],
)
def test_anything_else_is_refused(data):
    with pytest.raises(ProxyHeaderError):
        read_proxy_header(data)


def test_trusted_balancers():
    trusted = parse_trusted("10.0.0.5, 10.1.0.0/16")
    assert is_trusted("10.0.0.5", trusted) and is_trusted("10.1.2.3", trusted)
    assert not is_trusted("10.0.0.6", trusted) and not is_trusted("not-an-ip", trusted)
    with pytest.raises(ValueError, match="proxy_protocol_from"):
        ProxySettings(proxy_protocol_from="10.0.0.5, nonsense")


def test_the_server_keys_a_balanced_connection_on_the_client_address():
    async def scenario():
        backend = FakeBackend()
        settings = ProxySettings(host="127.0.0.1", port=0, proxy_protocol_from="127.0.0.1", first_byte_timeout_s=1)
        server = await start_server(settings, backend, max_images=5)
        try:
            login = frame(LOGIN, login_payload("demo", "123456"))
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # the balancer
            writer.write(V1 + login)
            assert (await reader.readexactly(16))[4:] == b"[true,false]"
            writer.close()
            assert backend.logins[-1] == ("demo", "203.0.113.7")
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(login)  # no header from the balancer: closed, nothing answered
            assert await reader.read() == b""
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
            writer.write(login)  # not a balancer: no header expected
            assert (await reader.readexactly(16))[4:] == b"[true,false]"
            assert backend.logins[-1] == ("demo", "127.0.0.2")
            writer.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_balanced_connection_over_its_clients_cap_is_answered_busy_at_once():
    """The frame came in the same packet as the PROXY header: the refusal answers from those bytes
    (not waiting for more) and records the client's address, not the balancer's."""

    async def scenario():
        records = []
        settings = ProxySettings(
            host="127.0.0.1", port=0, proxy_protocol_from="127.0.0.1", max_connections_per_address=1
        )
        server = await start_server(settings, FakeBackend(), max_images=5, on_request=records.append)
        clock = asyncio.get_running_loop().time
        try:
            login = frame(LOGIN, login_payload("demo", "123456"))
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            started = clock()
            writer.write(V1.replace(b"203.0.113.7", b"203.0.113.8") + login)  # another client: served
            assert (await reader.readexactly(16))[4:] == b"[true,false]"
            served_s = clock() - started
            writer.close()
            await wait_for(lambda: server.active_connections == 0, timeout=15)
            _, held = await asyncio.open_connection("127.0.0.1", server.port)
            held.write(V1)  # the client's one connection, open
            await wait_for(lambda: server.active_connections == 1, timeout=15)
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            started = clock()
            writer.write(V1 + login)
            assert (await reader.readexactly(17))[4:] == b"[false,false]"
            refused_s = clock() - started
            # waiting for a byte that is not coming would add OVERFLOW_HEADER_WAIT_S (then no reply at all)
            assert refused_s < served_s + OVERFLOW_HEADER_WAIT_S / 2, (refused_s, served_s)
            writer.close()  # the server records the refusal once the client is gone
            await wait_for(lambda: records and records[-1].outcome == "ERROR_BUSY", timeout=15)
            assert records[-1].peer == "203.0.113.7"
            held.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


@pytest.mark.parametrize(
    "header, why",
    [
        (v2("10.0.0.1", command=0x20), "LOCAL: the balancer's health check"),
        (b"PROXY UNKNOWN\r\n", "v1 UNKNOWN"),
        (V2_UNIX, "v2 AF_UNIX"),
        (V2_UNSPEC, "v2 unspecified family"),
    ],
)
def test_a_balanced_connection_with_no_client_address_is_closed_unserved(header, why):
    """Served under the balancer's address, such clients would share one binding, throttle and cap."""

    async def scenario():
        backend = FakeBackend()
        records = []
        settings = ProxySettings(host="127.0.0.1", port=0, proxy_protocol_from="127.0.0.1", first_byte_timeout_s=1)
        server = await start_server(settings, backend, max_images=5, on_request=records.append)
        try:
            login = frame(LOGIN, login_payload("demo", "123456"))
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(header + login)
            assert await asyncio.wait_for(reader.read(), 5) == b"", why  # no reply of any shape
            writer.close()
            assert backend.logins == [] and records == []
            assert server.active_connections == 0
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(V1 + login)  # a client with an address is served as before
            assert (await reader.readexactly(16))[4:] == b"[true,false]"
            writer.close()
        finally:
            await server.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))
