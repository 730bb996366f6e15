"""GET_GLB slots: one address cannot take them all, and a reader that falls behind lets go of its slot."""

from __future__ import annotations

import asyncio
import struct

from proxy_fakes import FakeBackend, frame, read_u32_block
from proxy_serving import async_test, serving, wait_for

from tcp_proxy.codec import GET_GLB

BIG = "b" * 64  # a stored GLB far larger than the socket buffers
BIG_GLB = b"glTF" + b"g" * (32 << 20)


def backend_with_big_glb() -> FakeBackend:
    backend = FakeBackend()
    backend.stored[BIG] = BIG_GLB
    return backend


async def connect_from(server, address: str):
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(address, 0))


@async_test
async def test_unread_downloads_of_one_address_do_not_make_another_address_busy():
    async with serving(backend_with_big_glb(), max_downloads=4, max_downloads_per_address=2, read_timeout_s=15) as server:
        hanging = [await connect_from(server, "127.0.0.1") for _ in range(4)]
        for _, writer in hanging:
            writer.write(frame(GET_GLB, BIG.encode()))  # and never read
        await wait_for(lambda: sum(r.command == "GET_GLB" for r in server.records) == 2)
        assert [r.outcome for r in server.records] == ["ERROR_BUSY", "ERROR_BUSY"]  # over its own 2
        assert server.downloads.in_use == 2
        reader, writer = await connect_from(server, "127.0.0.2")
        writer.write(frame(GET_GLB, BIG.encode()))
        assert await read_u32_block(reader) == BIG_GLB  # served while the first address hangs
        writer.close()
        await wait_for(lambda: server.downloads.in_use == 2)  # its slot back; the hanging two still held
        for _, writer in hanging:
            writer.transport.abort()
        await wait_for(lambda: server.downloads.in_use == 0)


@async_test
async def test_a_reader_below_the_minimum_rate_is_dropped_before_the_whole_replys_time():
    """32 MiB at 4 MiB/s may take 8.5 s in all; a reader taking ~1.3 MB/s falls behind within seconds."""
    settings = {"download_grace_s": 0.5, "min_download_bytes_per_s": 4 << 20, "read_timeout_s": 15}
    async with serving(backend_with_big_glb(), **settings) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(frame(GET_GLB, BIG.encode()))
        started = asyncio.get_running_loop().time()
        (size,) = struct.unpack(">I", await reader.readexactly(4))
        assert size == len(BIG_GLB)

        async def read_slowly():
            while await reader.read(64 * 1024):
                await asyncio.sleep(0.05)

        slow = asyncio.create_task(read_slowly())
        await wait_for(lambda: server.downloads.in_use == 0, timeout=60.0)
        whole_reply_s = settings["download_grace_s"] + len(BIG_GLB) / settings["min_download_bytes_per_s"]
        dropped_s = asyncio.get_running_loop().time() - started
        assert dropped_s < whole_reply_s, (dropped_s, whole_reply_s)  # not only when the whole time is up
        assert [r.outcome for r in server.records] == ["DISCONNECTED"]
        slow.cancel()
        writer.transport.abort()
