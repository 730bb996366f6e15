"""An upload written to disk as it arrives, never held in memory.

VIDEO and IMAGE payloads go to a file in the server's spool folder
(`spool_dir.py`), written in 1 MiB batches off the event loop. When the
upload is complete, an IMAGE request's photos are handed to the backend as
read-only views of the mapped file (`map_parts`): bytes-like objects that
cost no memory of their own. The file goes when the request ends, whatever
happens (`discard`).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
import os
import tempfile
from contextlib import suppress
from pathlib import Path

log = logging.getLogger("tcp_proxy")

FLUSH_BYTES = 1024 * 1024


class Spool:
    """One upload's file."""

    def __init__(self, directory: Path, suffix: str):
        fd, self.path = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=directory)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._map: mmap.mmap | None = None
        self._views: list[memoryview] = []

    async def write(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            await self._flush()

    async def finish(self) -> str:
        """Write what is pending and close the file; its path."""
        await self._flush()
        self._file.close()
        return self.path

    def map_parts(self, sizes: list[int]) -> list[memoryview]:
        """The finished file cut into consecutive parts of `sizes` bytes, as read-only views."""
        if sum(sizes) == 0:
            return [memoryview(b"") for _ in sizes]
        with open(self.path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        whole = memoryview(self._map)
        self._views.append(whole)
        offset, parts = 0, []
        for size in sizes:
            part = whole[offset : offset + size]
            self._views.append(part)
            parts.append(part)
            offset += size
        return parts

    def discard(self) -> None:
        """Close and delete the file (a no-op after the first call)."""
        with suppress(Exception):
            self._file.close()
        self._unmap()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError:
            log.exception("cannot delete spool file %s", self.path)

    async def _flush(self) -> None:
        parts, self._pending, self._pending_bytes = self._pending, [], 0
        if parts:
            await asyncio.to_thread(self._write_all, parts)

    def _write_all(self, parts: list[bytes]) -> None:
        for part in parts:
            view = memoryview(part)
            while view:
                view = view[self._file.write(view) :]

    def _unmap(self) -> None:
        for view in reversed(self._views):
            with suppress(BufferError):  # still exported (the backend keeps an array over it)
                view.release()
        self._views = []
        if self._map is not None:
            with suppress(BufferError):  # a view the backend still holds: the map goes with it
                self._map.close()
            self._map = None
