"""A stored GLB file streamed to a client: `tcp_proxy.backend.Download` over an open file.

The file is opened once (so a row removed or a file replaced meanwhile
cannot mix two files into one reply) and read a piece at a time in a
thread, off the event loop: a slow reader holds a file handle and one
piece, never the whole GLB.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tcp_proxy.errors import FileMissingError


class FileDownload:
    """Read an open GLB file piece by piece."""

    def __init__(self, path: Path):
        try:
            self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        except FileNotFoundError:
            raise FileMissingError(f"the file of {path.stem} is missing") from None
        self.size = os.fstat(self._file.fileno()).st_size

    async def read(self, n: int) -> bytes:
        return await asyncio.to_thread(self._file.read, n)

    async def close(self) -> None:
        self._file.close()
