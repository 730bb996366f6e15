"""A TCP proxy server on loopback with an in-memory backend, and client helpers to talk to it."""

from __future__ import annotations

import asyncio
import functools
import struct
from contextlib import asynccontextmanager

from proxy_fakes import FakeBackend, frame, image_payload, login_payload, read_reconstruction, read_u32_block

from tcp_proxy.codec import IMAGE, LOGIN
from tcp_proxy.server import start_server
from tcp_proxy.settings import ProxySettings

OK_DEMO = b"\x00\x00\x00\x0c[true,false]"
OK_VIP = b"\x00\x00\x00\x0b[true,true]"
FAILED = b"\x00\x00\x00\x0d[false,false]"
LOGIN_DEMO = frame(LOGIN, login_payload("demo", "123456"))
LOGIN_VIP = frame(LOGIN, login_payload("vip", "gold"))
IMAGE_FRAME = frame(IMAGE, image_payload([b"one", b"two"]))


def async_test(fn):
    """Run the coroutine test on a fresh event loop, for 20 s at most."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 20))

    return wrapper


@asynccontextmanager
async def serving(backend=None, *, model_loaded=None, **overrides):
    """A server on a free loopback port; its answered requests collect in `server.records`.
    model_loaded: what the server is told of the model's state (default: nothing)."""
    settings = ProxySettings(host="127.0.0.1", port=0, **overrides)
    records = []
    server = await start_server(
        settings, backend or FakeBackend(), max_images=5, port=0, on_request=records.append, model_loaded=model_loaded
    )
    server.records = records
    try:
        yield server
    finally:
        await server.close()


async def connect(server):
    return await asyncio.open_connection("127.0.0.1", server.port)


async def login(reader, writer, frame_bytes=LOGIN_DEMO) -> bytes:
    writer.write(frame_bytes)
    return await read_login_reply(reader)


async def read_login_reply(reader) -> bytes:
    """A whole `u32 length` + body reply, length included (LOGIN replies)."""
    head = await reader.readexactly(4)
    (n,) = struct.unpack(">I", head)
    return head + await reader.readexactly(n)


async def request_login(server, frame_bytes=LOGIN_DEMO) -> bytes:
    reader, writer = await connect(server)
    writer.write(frame_bytes)
    reply = await read_login_reply(reader)
    writer.close()
    return reply


async def one_shot(server, data: bytes, reconstruction=True):
    """One connection per request, as the Android app does."""
    reader, writer = await connect(server)
    writer.write(data)
    reply = await read_reconstruction(reader) if reconstruction else await read_u32_block(reader)
    writer.close()
    return reply


def spooled_files(spool_dir) -> list:
    """Upload files under the spool dir (each server keeps them in a folder of its own there)."""
    return [p for p in spool_dir.rglob("*") if p.is_file()]


async def wait_for(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")
