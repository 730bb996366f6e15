"""Over-limit frames and connections without a login let go of their slot soon, however they dribble."""

from __future__ import annotations

import asyncio
import struct
from contextlib import suppress

import pytest
from proxy_fakes import read_reconstruction, read_u32_block
from proxy_serving import (
    FAILED,
    LOGIN_DEMO,
    OK_DEMO,
    async_test,
    connect,
    login,
    read_login_reply,
    request_login,
    serving,
    wait_for,
)

from tcp_proxy.codec import GET_GLB, LIST, LOGIN, VIDEO

MAX_U32 = 0xFFFFFFFF


async def dribble(writer, chunk: bytes, every_s: float) -> None:
    with suppress(OSError, ConnectionError):
        while not writer.transport.is_closing():
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(every_s)


async def read_error(reader, command: int) -> bytes:
    if command == LOGIN:
        return await read_login_reply(reader)
    if command == VIDEO:
        return (await read_reconstruction(reader))[1]
    return await read_u32_block(reader)


@pytest.mark.parametrize("command", [LOGIN, GET_GLB, LIST])
@async_test
async def test_over_limit_small_frames_are_closed_at_once_and_free_the_address(command):
    """Three connections announce 4 GiB small frames, then send a byte every 0.3 s (never silent):
    each is closed after its reply (and the 2 s linger), so a real LOGIN from the same address gets in
    long before anything else (read_timeout_s) could have closed them."""
    read_timeout_s = 10
    async with serving(max_connections_per_address=3, read_timeout_s=read_timeout_s) as server:
        started = asyncio.get_running_loop().time()
        dribblers = []
        for _ in range(3):
            reader, writer = await connect(server)
            writer.write(struct.pack(">BI", command, MAX_U32))
            expected = FAILED if command == LOGIN else b"ERROR_PAYLOAD_TOO_LARGE"
            assert await read_error(reader, command) == expected
            dribblers.append(asyncio.create_task(dribble(writer, b"x", 0.3)))
        await wait_for(lambda: server.active_connections == 0, timeout=60.0)  # the 2 s linger, then closed
        closed_s = asyncio.get_running_loop().time() - started
        assert closed_s < read_timeout_s, closed_s
        assert await request_login(server) == OK_DEMO
        for task in dribblers:
            task.cancel()


@async_test
async def test_an_over_limit_upload_discarded_below_the_minimum_rate_is_closed():
    settings = {"max_payload_bytes": 1000, "upload_grace_s": 0.5, "min_upload_bytes_per_s": 1000, "read_timeout_s": 10}
    async with serving(**settings) as server:
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", VIDEO, 10**6))
        assert await read_error(reader, VIDEO) == b"ERROR_PAYLOAD_TOO_LARGE"
        task = asyncio.create_task(dribble(writer, b"v" * 10, 0.1))  # 100 bytes/s
        await wait_for(lambda: server.active_connections == 0, timeout=60.0)  # at this pace: ~3 hours
        task.cancel()


@async_test
async def test_discarding_an_over_limit_upload_stops_at_max_discard_s():
    """Fast enough, but endless: dropped after max_discard_s, not after the 2 GiB it announced."""
    async with serving(max_payload_bytes=1000, max_discard_s=1.0, read_timeout_s=10) as server:
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", VIDEO, 1 << 31))
        assert await read_error(reader, VIDEO) == b"ERROR_PAYLOAD_TOO_LARGE"
        started = asyncio.get_running_loop().time()
        task = asyncio.create_task(dribble(writer, b"v" * 65536, 0.01))
        await wait_for(lambda: server.active_connections == 0, timeout=60.0)  # 2 GiB at this pace: ~5 min
        assert asyncio.get_running_loop().time() - started >= 0.9
        task.cancel()


@async_test
async def test_a_sender_that_writes_its_whole_over_limit_body_first_reads_the_error():
    async with serving(max_payload_bytes=1000, max_discard_s=5.0) as server:
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", VIDEO, 4 << 20) + b"v" * (4 << 20))
        await writer.drain()
        assert await read_error(reader, VIDEO) == b"ERROR_PAYLOAD_TOO_LARGE"
        assert await reader.read() == b""
        writer.close()


@async_test
async def test_a_connection_without_a_login_is_closed_after_the_shorter_idle_timeout():
    async with serving(idle_timeout_before_login_s=1.0, idle_timeout_s=10) as server:
        anonymous_reader, anonymous = await connect(server)
        for _ in range(3):  # silent well within the timeout each time: kept open
            anonymous.write(struct.pack(">BI", LIST, 0))
            assert await read_u32_block(anonymous_reader) == b"ERROR_NOT_LOGGED_IN"
            await asyncio.sleep(0.2)  # the client's pause, not a wait for the server
        reader, writer = await connect(server)
        assert await login(reader, writer, LOGIN_DEMO) == OK_DEMO
        assert await anonymous_reader.read() == b""  # silent past 1 s: closed without a reply
        await asyncio.sleep(1.2)  # silent past the shorter timeout
        writer.write(struct.pack(">BI", LIST, 0))  # logged in: the full idle timeout applies
        assert await read_u32_block(reader) == b"[]"
        assert server.active_connections == 1
        writer.close()
