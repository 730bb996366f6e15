"""Scenarios 6-8 of `scripts/abuse_check.py`: one client holding the front door's shared slots.

Each talks to a service on loopback from source addresses of its own and
returns a `Finding` (what each sends and measures is told in `devkit.abuse`):

6. starvation: one user's slow and held uploads against another user's requests;
7. over-limit dribble: LOGIN headers announcing 4 GiB, then a byte now and then;
8. unread downloads: one address requesting a large GLB on many connections, reading nothing.
"""

from __future__ import annotations

import asyncio
import struct
import time
from contextlib import suppress

from devkit.abuse_scenarios import Finding
from devkit.loopback_wire import (
    LOGIN_OK,
    REPLY_TIMEOUT_S,
    Target,
    close,
    connect,
    header,
    login_frame,
    read_block,
    read_upload_error,
    timed_get,
    timed_login,
)
from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN
from tcp_proxy.errors import BusyError

ERROR_BUSY = BusyError.code
STARVE_NET, DRIBBLE_NET, UNREAD_NET = "127.0.16", "127.0.17", "127.0.18"
ADMITTED_GOAL = 4  # of 5 requests of the other user
DRIBBLE_LOGIN_GOAL_S = 3.0
DRIBBLE_CLOSED_GOAL_S = 45.0
DOWNLOAD_GOAL_S = 20.0
MAX_U32 = 0xFFFFFFFF


def image_frame(payload: bytes) -> bytes:
    """An IMAGE frame of one image."""
    body = struct.pack(">II", 1, len(payload)) + payload
    return header(IMAGE, len(body)) + body


async def logged_in(target: Target, source: str, username: str, password: str):
    """A connection from `source` on which `username` has logged in."""
    reader, writer = await connect(target, source)
    writer.write(login_frame(username, password))
    reply = await asyncio.wait_for(read_block(reader), REPLY_TIMEOUT_S)
    if reply not in LOGIN_OK:
        await close(writer)
        raise RuntimeError(f"LOGIN of {username} failed: {reply!r}")
    return reader, writer


async def upload(target: Target, source: str, username: str, password: str, frame: bytes, seconds: float) -> str:
    """LOGIN, then `frame` sent in 4 pieces over `seconds`; the error code of the reply ("" for a GLB)."""
    reader, writer = await logged_in(target, source, username, password)
    try:
        step = -(-len(frame) // 4)
        for start in range(0, len(frame), step):
            writer.write(frame[start : start + step])
            await writer.drain()
            await asyncio.sleep(seconds / 4)
        code = await asyncio.wait_for(read_upload_error(reader), REPLY_TIMEOUT_S * 6)
        return "" if code == "(a GLB)" else code
    finally:
        await close(writer)


async def check_starvation(
    target: Target, hog: str, other: str, password: str, *, photo: bytes = b"\xff\xd8 not a photo",
    slow_upload_s: float = 8.0, requests: int = 5,
) -> Finding:  # fmt: skip
    """Scenario 6: `hog` finishes two uploads of `slow_upload_s` each and holds a third open; then
    `other` sends `requests` IMAGE requests. Goal: at least ADMITTED_GOAL of them not ERROR_BUSY."""
    frame = image_frame(photo)
    _, held = await logged_in(target, f"{STARVE_NET}.1", hog, password)
    try:
        held.write(frame[: max(9, len(frame) // 2)])  # and no more
        await held.drain()
        for _ in range(2):
            await upload(target, f"{STARVE_NET}.1", hog, password, frame, slow_upload_s)
        codes = [await upload(target, f"{STARVE_NET}.2", other, password, frame, 0.0) for _ in range(requests)]
    finally:
        await close(held)
    admitted = sum(code != ERROR_BUSY for code in codes)
    measured = f"{admitted}/{requests} of another user's requests admitted (replies: {', '.join(c or 'GLB' for c in codes)})"
    goal = f">= {ADMITTED_GOAL} of {requests} admitted while one user holds slow uploads"
    return Finding("6 starvation", measured, goal, admitted >= ADMITTED_GOAL, {"admitted": admitted, "codes": codes})


async def dribbled_login(target: Target, source: str, every_s: float, until: float) -> float | None:
    """A LOGIN header announcing 4 GiB, then a byte every `every_s`: seconds until the server closed
    it, or None when still open at `until`."""
    started = time.monotonic()
    try:
        reader, writer = await connect(target, source)
    except OSError:
        return 0.0
    try:
        writer.write(header(LOGIN, MAX_U32))
        closed = asyncio.ensure_future(_read_until_closed(reader))
        while (left := until - time.monotonic()) > 0:
            done, _ = await asyncio.wait({closed}, timeout=min(every_s, left))
            if done:
                return time.monotonic() - started
            try:
                writer.write(b"x")
                await writer.drain()
            except OSError:
                return time.monotonic() - started
        closed.cancel()
        return None
    finally:
        await close(writer)


async def _read_until_closed(reader: asyncio.StreamReader) -> None:
    """Read to the end; the server's half-close is not the end (it may still read), a reset is."""
    with suppress(OSError):
        while True:
            if not await reader.read(1 << 16):
                await asyncio.sleep(3600)  # half-closed: wait for the writes to fail instead


async def check_over_limit_dribble(
    target: Target, username: str, password: str, *, connections: int = 32, every_s: float = 1.5,
    hold_s: float = DRIBBLE_CLOSED_GOAL_S,
) -> Finding:  # fmt: skip
    """Scenario 7: `connections` dribbled over-limit LOGINs from one address; from 1 s in, a real
    LOGIN from that address every 0.25 s until one succeeds. Goals: one succeeds within
    DRIBBLE_LOGIN_GOAL_S of the first; none of the dribblers is open after `hold_s`."""
    source = f"{DRIBBLE_NET}.1"
    until = time.monotonic() + hold_s
    dribblers = [asyncio.ensure_future(dribbled_login(target, source, every_s, until)) for _ in range(connections)]
    await asyncio.sleep(1.0)
    first = time.monotonic()
    ok = False
    while not ok and time.monotonic() - first < DRIBBLE_LOGIN_GOAL_S * 2:
        _, ok = await timed_login(target, source, username, password)
        if not ok:
            await asyncio.sleep(0.25)
    seconds = time.monotonic() - first
    lifetimes = await asyncio.gather(*dribblers)
    still_open = sum(life is None for life in lifetimes)
    longest = max((life for life in lifetimes if life is not None), default=0.0)
    login_met = ok and seconds < DRIBBLE_LOGIN_GOAL_S
    measured = (
        f"LOGIN from the same address {'answered [true,...]' if ok else 'refused'} after {seconds:.2f} s; "
        f"{connections} dribblers: {still_open} open after {hold_s:.0f} s, the longest closed after {longest:.1f} s"
    )
    goal = f"LOGIN in < {DRIBBLE_LOGIN_GOAL_S:.0f} s; none open after {hold_s:.0f} s"
    figures = {"login_s": seconds, "login_ok": ok, "still_open": still_open, "longest_s": longest}
    return Finding("7 over-limit dribble", measured, goal, login_met and still_open == 0, figures)


async def unread_download(target: Target, source: str, hash_text: str, until: float) -> None:
    """GET_GLB `hash_text` and read nothing until `until`."""
    with suppress(OSError, asyncio.TimeoutError):
        _, writer = await asyncio.wait_for(connect(target, source, receive_buffer=4096), REPLY_TIMEOUT_S)
        try:
            writer.write(header(GET_GLB, len(hash_text)) + hash_text.encode())
            await asyncio.sleep(max(0.0, until - time.monotonic()))
        finally:
            writer.transport.abort()


async def check_unread_downloads(
    target: Target, big_hash: str, other_hash: str, other_glb: bytes, *, connections: int = 40, hold_s: float = 30.0,
) -> Finding:  # fmt: skip
    """Scenario 8: `connections` GET_GLB of the large GLB from one address, none read; 2 s in, another
    address fetches `other_hash`. Goal: its whole GLB within DOWNLOAD_GOAL_S."""
    until = time.monotonic() + hold_s
    hanging = [asyncio.ensure_future(unread_download(target, f"{UNREAD_NET}.1", big_hash, until)) for _ in range(connections)]
    await asyncio.sleep(min(2.0, hold_s / 4))
    seconds, data = await timed_get(target, f"{UNREAD_NET}.2", other_hash)
    for task in hanging:
        task.cancel()
    await asyncio.gather(*hanging, return_exceptions=True)
    served = data == other_glb and seconds < DOWNLOAD_GOAL_S
    shown = "served intact" if data == other_glb else ("ERROR_BUSY" if data == ERROR_BUSY.encode() else f"{len(data)} bytes, not the GLB")
    measured = f"another address's GET_GLB {shown} in {seconds:.2f} s while {connections} downloads hang unread"
    goal = f"served in < {DOWNLOAD_GOAL_S:.0f} s"
    return Finding("8 unread downloads", measured, goal, served, {"seconds": seconds, "served": data == other_glb})
