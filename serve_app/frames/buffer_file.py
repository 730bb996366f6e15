"""A read-only, seekable file over bytes already in memory, without copying them.

PyAV reads a container from any object with `read` and `seek`. `io.BytesIO`
would first copy the whole video; this reads from the caller's buffer (for
a video that came through Ray's object store, shared memory) a chunk at a
time.
"""

from __future__ import annotations

import io


class BufferFile(io.RawIOBase):
    """`read`/`readinto`/`seek`/`tell` over a bytes-like object."""

    def __init__(self, data) -> None:
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._view[self._pos : self._pos + len(buffer)]
        n = len(chunk)
        memoryview(buffer).cast("B")[:n] = chunk
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return len(self._view)
