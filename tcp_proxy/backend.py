"""What the TCP server needs from the rest of the service.

The server speaks the protocol and enforces limits; everything else (users,
reconstruction, stored files) is behind this interface. The production
implementation calls Ray Serve deployment handles (`serve_app.app`); unit tests
of the server may pass a small in-memory one.

Every method raises `serve_app.errors.ServiceError` subclasses for answers the
client should see as an `ERROR_*` code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence


@dataclass(frozen=True)
class User:
    id: int
    username: str
    is_vip: bool


@dataclass(frozen=True)
class Reconstruction:
    name: str  # "<hashed_name>.glb"
    glb: bytes
    timings: dict[str, float] = field(default_factory=dict, compare=False)  # stage -> seconds, for logs


class Backend(Protocol):
    async def login(self, username: str, password: str, address: str) -> User | None:
        """The user on success; None for any failure (unknown, wrong, disabled, throttled)."""

    async def reconstruct_images(self, user: User, images: Sequence[bytes]) -> Reconstruction:
        """Decode the image files, run VGGT, store the GLB for `user`."""

    async def reconstruct_video(self, user: User, video_path: str) -> Reconstruction:
        """Same for a video spooled to `video_path` (the caller deletes the file)."""

    async def get_glb(self, hash_text: str) -> bytes:
        """GLB bytes by share hash as typed by a user (white space, `.glb` tolerated)."""
