"""PROXY headers at their limits: the 107-byte v1 line, exact field counts, the v2 address block, the messages logged."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from tcp_proxy.proxy_protocol import V1_MAX, ProxyHeader, ProxyHeaderError, parse_trusted, read_proxy_header

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_raw(command: int, family: int, block: bytes) -> bytes:
    return SIGNATURE + bytes([command, family]) + struct.pack(">H", len(block)) + block


def refusal(data: bytes) -> str:
    with pytest.raises(ProxyHeaderError) as caught:
        read_proxy_header(data)
    return str(caught.value)


def test_a_v1_line_is_read_up_to_its_own_crlf_not_a_later_one():
    line = b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 4567\r\n"
    assert read_proxy_header(line + b"\r\n\x01") == ProxyHeader(len(line), "203.0.113.7")


def test_v1_tcp6_gives_the_client_address():
    line = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 4567\r\n"
    assert read_proxy_header(line) == ProxyHeader(len(line), "2001:db8::7")


def test_a_v1_line_without_its_end_waits_under_107_bytes_and_is_refused_at_107():
    start = b"PROXY TCP4 203.0.113.7 10.0.0.2 51234 4567"
    assert read_proxy_header((start + b" " * V1_MAX)[: V1_MAX - 1]) is None
    assert refusal((start + b" " * V1_MAX)[:V1_MAX]) == "PROXY v1 header too long"


def test_a_v1_line_ending_past_107_bytes_is_refused_even_when_well_formed():
    line = b"PROXY TCP4 203.0.113.7 " + b"9" * 90 + b" 51234 4567\r\n"
    assert len(line) > V1_MAX
    assert refusal(line) == "PROXY v1 header too long"


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 203.0.113.7 10.0.0.2 51234\r\n",  # five fields
        b"PROXY TCP4  203.0.113.7 10.0.0.2 51234 4567\r\n",  # a double space is an empty field
        b"PROXY UDP4 203.0.113.7 10.0.0.2 51234 4567\r\n",
        b"PROXY tcp4 203.0.113.7 10.0.0.2 51234 4567\r\n",
    ],
)
def test_a_v1_line_must_have_exactly_the_six_fields_of_tcp(line):
    assert refusal(line) == "malformed PROXY v1 header"


@pytest.mark.parametrize(
    "line", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", b"PROXY UNKNOWN x\r\n"]
)
def test_v1_unknown_is_named_in_the_refusal(line):
    assert refusal(line) == "PROXY v1 header UNKNOWN: no client address"


def test_non_ascii_in_a_v1_line_is_a_header_error_with_the_bytes_replaced():
    message = refusal("PROXY TCP4 1.2.3.é 10.0.0.2 1 2\r\n".encode())
    assert message == "bad address in PROXY header: '1.2.3.\ufffd\ufffd'"


def test_a_bad_address_is_quoted_cut_to_64_characters():
    address = "9" * 80
    message = refusal(f"PROXY TCP4 {address} 10.0.0.2 1 2\r\n".encode())
    assert message == f"bad address in PROXY header: {'9' * 64!r}"


def test_something_else_is_refused_with_its_message():
    assert refusal(b"GET / HTTP/1.1\r\n") == "the connection does not start with a PROXY header"


def test_v2_local_with_no_address_block_is_read_at_exactly_16_bytes():
    header = v2_raw(0x20, 0x00, b"")
    assert len(header) == 16
    assert read_proxy_header(header) == ProxyHeader(16, None)
    assert read_proxy_header(v2_raw(0x20, 0x11, bytes(12)) + b"\x01") == ProxyHeader(28, None)


def test_v2_messages_name_what_is_wrong():
    assert refusal(SIGNATURE + bytes([0x11, 0x11]) + struct.pack(">H", 0)) == "unsupported PROXY header version"
    assert refusal(v2_raw(0x22, 0x11, bytes(12))) == "unknown PROXY v2 command 2"
    assert refusal(v2_raw(0x21, 0x12, bytes(12))) == "PROXY v2 family 0x12 is not TCP over IP: no client address"


@pytest.mark.parametrize("family, size", [(0x11, 4), (0x21, 16)])
def test_a_v2_address_block_needs_both_addresses_and_ports(family, size):
    short = bytes(2 * size + 3)
    assert refusal(v2_raw(0x21, family, short)) == "PROXY v2 address block too short"
    assert refusal(v2_raw(0x21, family, bytes(2 * size))) == "PROXY v2 address block too short"
    source = ipaddress.ip_address("203.0.113.7" if size == 4 else "2001:db8::7")
    exact = source.packed + bytes(size + 4)
    assert read_proxy_header(v2_raw(0x21, family, exact)).source == str(source)


def test_trusted_networks_may_be_written_with_host_bits_set():
    assert parse_trusted("10.1.2.3/16, 2001:db8::5/32") == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("2001:db8::/32"),
    )
