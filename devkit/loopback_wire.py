"""Raw protocol frames on asyncio connections from chosen loopback addresses.

For the attacks of devkit/abuse.py: frames cut short, dribbled or never read, which a
well-behaved client such as tcp_proxy.client never sends. Layouts from tcp_proxy.codec.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass

from tcp_proxy.codec import GET_GLB, HEADER, LOGIN, U32

LOGIN_OK = (b"[true,false]", b"[true,true]")  # the LOGIN replies of a success
REPLY_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Target:
    host: str
    port: int


def header(command: int, length: int) -> bytes:
    return HEADER.pack(command, length)


def login_frame(username: str, password: str) -> bytes:
    payload = json.dumps({"u": username, "p": password}).encode()
    return header(LOGIN, len(payload)) + payload


async def connect(
    target: Target, source: str, *, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from the loopback address `source` (a small receive buffer if given)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((source, 0))
        await asyncio.get_running_loop().sock_connect(sock, (target.host, target.port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=1 << 16)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (OSError, asyncio.TimeoutError):
        pass


async def read_block(reader: asyncio.StreamReader) -> bytes:
    (length,) = U32.unpack(await reader.readexactly(4))
    return await reader.readexactly(length)


async def read_upload_error(reader: asyncio.StreamReader) -> str:
    """The code of an IMAGE error reply (name length 0, then the code)."""
    name = await read_block(reader)
    return "(a GLB)" if name else (await read_block(reader)).decode("ascii", "replace")


async def read_to_eof(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(1 << 16):
            pass
    except OSError:
        pass


async def timed_request(target: Target, source: str, data: bytes) -> tuple[float, bytes | None]:
    """(seconds from connecting to the reply, the reply's block; None when none came) of one
    u32-length-replied frame (LOGIN, GET_GLB) on a new connection."""
    started = time.monotonic()
    reply = None
    try:
        reader, writer = await asyncio.wait_for(connect(target, source), REPLY_TIMEOUT_S)
        try:
            writer.write(data)
            reply = await asyncio.wait_for(read_block(reader), REPLY_TIMEOUT_S)
        finally:
            await close(writer)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass
    return time.monotonic() - started, reply


async def timed_login(target: Target, source: str, username: str, password: str) -> tuple[float, bool]:
    """(seconds, whether it was answered `[true, ...]`) of a LOGIN on a new connection."""
    seconds, reply = await timed_request(target, source, login_frame(username, password))
    return seconds, reply in LOGIN_OK


async def timed_get(target: Target, source: str, hash_text: str) -> tuple[float, bytes]:
    """(seconds, reply data) of a GET_GLB on a new connection; b"" when nothing came."""
    seconds, reply = await timed_request(target, source, header(GET_GLB, len(hash_text)) + hash_text.encode())
    return seconds, reply or b""
