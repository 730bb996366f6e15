"""Slow, silent and greedy clients: the read deadlines and timeouts of a connection."""

from __future__ import annotations

import asyncio
import struct
from contextlib import suppress

from proxy_fakes import FakeBackend, frame, image_payload, read_reconstruction, read_u32_block
from proxy_serving import (
    OK_DEMO,
    OK_VIP,
    FAILED,
    LOGIN_DEMO,
    LOGIN_VIP,
    IMAGE_FRAME,
    async_test,
    serving,
    connect,
    login,
    read_login_reply,
    request_login,
    spooled_files,
    wait_for,
)

from tcp_proxy.codec import IMAGE, VIDEO


# -- timeouts ----------------------------------------------------------------
@async_test
async def test_slow_sender_is_answered_and_closed(tmp_path):
    async with serving(read_timeout_s=0.2, spool_dir=str(tmp_path)) as server:
        assert await request_login(server, LOGIN_VIP) == OK_VIP
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", VIDEO, 100) + b"v" * 10)
        assert await read_reconstruction(reader) == ("", b"ERROR_READ_TIMEOUT")
        assert await reader.read() == b""
        writer.close()
        reader, writer = await connect(server)
        writer.write(b"\x04\x00")  # inside a header
        assert await read_u32_block(reader) == b"ERROR_READ_TIMEOUT"
        writer.close()
        await wait_for(lambda: server.active_connections == 0)
        assert spooled_files(tmp_path) == []


@async_test
async def test_idle_connection_is_closed_without_reply():
    async with serving(idle_timeout_s=0.2, read_timeout_s=0.05) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        assert await reader.read() == b""
        writer.close()


@async_test
async def test_computing_is_never_timed_out():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, read_timeout_s=0.05, idle_timeout_s=0.05) as server:
        reader, writer = await connect(server)
        writer.write(LOGIN_DEMO + IMAGE_FRAME)
        assert await read_login_reply(reader) == OK_DEMO
        await asyncio.sleep(0.3)
        backend.gate.set()
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.close()


# -- slow and greedy clients -------------------------------------------------
@async_test
async def test_a_slowloris_login_is_cut_off_and_real_logins_still_get_in():
    """Connections dribbling a LOGIN one byte at a time (never silent for read_timeout_s) are answered
    ERROR_READ_TIMEOUT ([false,false]) at small_frame_timeout_s, before their frame is complete; a real
    LOGIN meanwhile is answered."""
    async with serving(read_timeout_s=5, small_frame_timeout_s=0.6, max_connections=4) as server:
        slow = [await connect(server) for _ in range(3)]
        sent = [0] * len(slow)

        async def dribble(index, writer):
            with suppress(OSError):
                for byte in LOGIN_DEMO:  # ~3 s in all, at the client's pace
                    writer.write(bytes([byte]))
                    sent[index] += 1
                    await asyncio.sleep(0.1)

        dribblers = [asyncio.create_task(dribble(i, w)) for i, (_, w) in enumerate(slow)]
        assert await request_login(server) == OK_DEMO  # the fourth slot is free
        for index, (reader, _) in enumerate(slow):
            assert await read_login_reply(reader) == FAILED
            assert sent[index] < len(LOGIN_DEMO)  # cut off mid-frame, not answered once it was whole
            assert await reader.read() == b""  # closed after the reply
        for task in dribblers:
            task.cancel()
        await wait_for(lambda: server.active_connections == 0)
        assert {r.outcome for r in server.records if r.command == "LOGIN"} == {"OK", "ERROR_READ_TIMEOUT"}


@async_test
async def test_a_connection_that_never_speaks_is_closed_after_the_first_byte_timeout():
    other_timeouts_s = 60  # the next timeout that could close it
    settings = {"read_timeout_s": other_timeouts_s, "idle_timeout_before_login_s": other_timeouts_s}
    async with serving(first_byte_timeout_s=0.3, **settings) as server:
        reader, _ = await connect(server)
        started = asyncio.get_running_loop().time()
        assert await reader.read() == b""  # closed without a reply: nothing was asked
        waited_s = asyncio.get_running_loop().time() - started
        # by the first-byte timeout (counted from the accept, a moment before `started`), not another
        assert 0.2 <= waited_s < other_timeouts_s / 2, waited_s


@async_test
async def test_an_upload_below_the_minimum_rate_is_cut_off():
    async with serving(upload_grace_s=0.3, min_upload_bytes_per_s=50, read_timeout_s=5) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        writer.write(frame(IMAGE, image_payload([b"x" * 5000]))[:20])  # then nothing more
        assert await read_reconstruction(reader) == ("", b"ERROR_READ_TIMEOUT")
        await wait_for(lambda: server.pending_reconstructions == 0)
