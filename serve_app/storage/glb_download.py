"""A stored GLB file streamed to a client: `tcp_proxy.backend.Download` over an open file or object.

The file is opened once (so a row removed or a file replaced meanwhile
cannot mix two files into one reply) and read a piece at a time in a
thread, off the event loop: a slow reader holds a file handle and one
piece, never the whole GLB. An object in a bucket is read the same way, in
ranges of at most the root's read block (`serve_app.storage.blob_root`).
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath

from serve_app.storage.blob_root import BlobRoot
from tcp_proxy.errors import FileMissingError


class FileDownload:
    """Read an open GLB file (local or in an object store) piece by piece."""

    def __init__(self, root: BlobRoot, key: str):
        try:
            self._file, self.size = root.open(key)
        except FileNotFoundError:
            raise FileMissingError(f"the file of {PurePosixPath(key).stem} is missing") from None

    async def read(self, n: int) -> bytes:
        return await asyncio.to_thread(self._file.read, n)

    async def close(self) -> None:
        self._file.close()
