"""A connection's writes under deadlines: sending a reply, and lingering before a close."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Awaitable, Iterator

from .backend import Download
from .deadlines import MinRate
from .settings import ProxySettings

READ_SIZE = 256 * 1024
SEND_CHUNK = 256 * 1024
LINGER_S = 2.0  # at most this long draining a client before closing after an error


class ClientGone(Exception):
    """The client cannot be written to any more."""


async def send_reply(
    writer: asyncio.StreamWriter, settings: ProxySettings, parts: list[bytes], download: Download | None = None
) -> int:
    """Write `parts`, then the download, in chunks; the bytes sent. Each chunk is allowed
    `read_timeout_s` to drain, and the client must keep up `min_download_bytes_per_s` on average
    after `download_grace_s` all along: the chunk ending at byte B must be taken by grace + B / rate
    after the start (a stalled reader of a large reply is dropped once it falls behind, not at the
    end of the whole reply's time). Raise ClientGone when the client does not take it (the reply is
    then lost, as with a disconnect)."""
    loop = asyncio.get_running_loop()
    started, rate = loop.time(), MinRate.download(settings)
    sent = 0
    try:
        for chunk in _chunks(parts, download):
            data = await chunk
            writer.write(data)
            left = rate.due(started, sent + len(data)) - loop.time()
            if left <= 0:
                raise asyncio.TimeoutError
            await asyncio.wait_for(writer.drain(), min(settings.read_timeout_s, left))
            sent += len(data)
    except (OSError, asyncio.TimeoutError) as exc:
        raise ClientGone() from exc
    if writer.transport.is_closing():
        raise ClientGone()
    return sent


async def linger(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    seconds: float,
    until_bytes: int | None = None,
    silence_s: float | None = None,
    min_rate: MinRate | None = None,
) -> None:
    """Flush, shut our side, and drop what the client still sends: for `seconds` at most, until its
    end of stream, until `until_bytes` have been dropped, until it is silent for `silence_s`, or once
    it falls behind `min_rate`."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds
    dropped = 0
    with suppress(Exception):
        await asyncio.wait_for(writer.drain(), seconds)
        if writer.can_write_eof():
            writer.write_eof()
        while (left := deadline - loop.time()) > 0 and (until_bytes is None or dropped < until_bytes):
            wait = min(left, silence_s or left)
            if min_rate is not None:
                wait = min(wait, min_rate.due(started, dropped) - loop.time())
            if wait <= 0:
                break
            data = await asyncio.wait_for(reader.read(READ_SIZE), wait)
            if not data:
                break
            dropped += len(data)


async def _ready(data: bytes) -> bytes:
    return data


def _chunks(parts: list[bytes], download: Download | None) -> Iterator[Awaitable[bytes]]:
    """Awaitables of the reply's pieces, at most SEND_CHUNK bytes each: `parts`, then the download's."""
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), SEND_CHUNK):
            yield _ready(view[start : start + SEND_CHUNK])
    if download is not None:
        left = download.size
        while left > 0:
            yield _read_exactly(download, min(SEND_CHUNK, left))
            left -= SEND_CHUNK


async def _read_exactly(download: Download, n: int) -> bytes:
    data = await download.read(n)
    if len(data) != n:  # the file changed under us: the reply's length is already sent
        raise OSError(f"the stored file ended early ({len(data)} of {n} bytes)")
    return data
