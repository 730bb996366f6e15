"""What the TCP server needs from the rest of the service, and the types it exchanges.

The server speaks the protocol and enforces limits; everything else (users,
reconstruction, stored files) is behind `Backend`. The service implements it
over Ray Serve (`serve_app.serve_backend.ServeBackend`); the server's tests
pass a small in-memory one.

Every method raises `tcp_proxy.errors.ServiceError` subclasses for answers
the client should see as an `ERROR_*` code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Protocol, Sequence


@dataclass(frozen=True)
class User:
    """A logged-in user: `is_vip` is true only while the VIP status is in force."""

    id: int
    username: str
    is_vip: bool


@dataclass(frozen=True)
class Reconstruction:
    """A finished reconstruction: the GLB and, once stored, its share hash."""

    glb: bytes
    hashed_name: str | None = None  # 64 hex characters once stored; None when only returned
    frame_count: int = 0  # frames that went into the model
    point_count: int = 0  # points in the GLB
    timings: Mapping[str, float] = field(default_factory=dict, compare=False)  # stage -> seconds, for logs

    @property
    def name(self) -> str:
        """The name an IMAGE/VIDEO reply carries: `<hashed_name>.glb`."""
        if self.hashed_name is None:
            raise ValueError("the reconstruction was not stored: it has no share hash")
        return f"{self.hashed_name}.glb"


@dataclass(frozen=True)
class GlbInfo:
    """One stored GLB of a user, as LIST reports it."""

    hashed_name: str
    original_name: str
    file_size: int
    created_at: datetime | None  # UTC


class Download(Protocol):
    """A stored GLB on its way to a client: its size, then its bytes piece by piece."""

    size: int

    async def read(self, n: int) -> bytes:
        """Up to `n` next bytes; b"" at the end."""

    async def close(self) -> None:
        """Release what the download holds (a file); called once, whatever happened."""


class BytesDownload:
    """A Download of bytes already in memory."""

    def __init__(self, data: bytes):
        self.size = len(data)
        self._view = memoryview(data)
        self._pos = 0

    async def read(self, n: int) -> bytes:
        chunk = bytes(self._view[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk

    async def close(self) -> None:
        self._view.release()


class Backend(Protocol):
    async def login(self, username: str, password: str, address: str) -> User | None:
        """The user on success; None for any failure (unknown, wrong, disabled, throttled)."""

    async def reconstruct_images(self, user: User, images: Sequence[bytes]) -> Reconstruction:
        """Decode the image files, run VGGT, store the GLB for `user`.

        `images` are bytes-like (views of the spooled upload), valid until the call returns."""

    async def reconstruct_video(self, user: User, video_path: str) -> Reconstruction:
        """Same for a video spooled to `video_path` (the caller deletes the file)."""

    async def open_glb(self, hash_text: str) -> Download:
        """The GLB of a share hash as typed by a user (white space, `.glb` tolerated), to be streamed."""

    async def list_glbs(self, user: User, limit: int) -> Sequence[GlbInfo]:
        """The user's stored GLBs, newest first, at most `limit`."""
