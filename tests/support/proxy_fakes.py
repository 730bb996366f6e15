"""An in-memory Backend and small socket helpers for the TCP proxy tests."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
from typing import Sequence

from tcp_proxy.errors import HashNotFoundError, InvalidHashError, NoFramesError
from tcp_proxy.backend import BytesDownload, GlbInfo, Reconstruction, User

USERS = {"demo": ("123456", False), "vip": ("gold", True)}


class FakeBackend:
    """Users from USERS; a reconstruction is the sha256 of the upload."""

    def __init__(self) -> None:
        self.stored: dict[str, bytes] = {}
        self.owners: dict[str, int] = {}  # hash -> user id, in storing order
        self.gate: asyncio.Event | None = None  # when set, reconstructions wait for it
        self.fail: BaseException | None = None  # raised by reconstructions when set
        self.started = 0
        self.logins: list[tuple[str, str]] = []
        self.video_paths: list[str] = []
        self.video_existed: list[bool] = []

    async def login(self, username: str, password: str, address: str) -> User | None:
        self.logins.append((username, address))
        entry = USERS.get(username)
        if entry is None or entry[0] != password:
            return None
        return User(id=len(username), username=username, is_vip=entry[1])

    async def _store(self, user: User, data: bytes) -> Reconstruction:
        self.started += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        if not data:
            raise NoFramesError("empty upload")
        digest = hashlib.sha256(user.username.encode() + data).hexdigest()
        glb = b"glTF" + data[:64]
        self.stored[digest] = glb
        self.owners[digest] = user.id
        return Reconstruction(glb=glb, hashed_name=digest, timings={"model": 0.01})

    async def reconstruct_images(self, user: User, images: Sequence[bytes]) -> Reconstruction:
        return await self._store(user, b"|".join(images))

    async def reconstruct_video(self, user: User, video_path: str) -> Reconstruction:
        self.video_paths.append(video_path)
        self.video_existed.append(os.path.exists(video_path))
        with open(video_path, "rb") as f:
            data = f.read()
        return await self._store(user, data)

    async def list_glbs(self, user: User, limit: int) -> list[GlbInfo]:
        mine = [digest for digest, owner in self.owners.items() if owner == user.id]
        return [GlbInfo(digest, "upload", len(self.stored[digest]), None) for digest in reversed(mine)][:limit]

    async def open_glb(self, hash_text: str) -> BytesDownload:
        return BytesDownload(await self.get_glb(hash_text))

    async def get_glb(self, hash_text: str) -> bytes:
        text = hash_text.strip()
        if text.endswith(".glb"):
            text = text[:-4]
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise InvalidHashError(text)
        if text not in self.stored:
            raise HashNotFoundError(text)
        return self.stored[text]


def frame(command: int, payload: bytes) -> bytes:
    return struct.pack(">BI", command, len(payload)) + payload


def image_payload(images: Sequence[bytes]) -> bytes:
    return struct.pack(">I", len(images)) + b"".join(struct.pack(">I", len(i)) + i for i in images)


def login_payload(user: str, password: str) -> bytes:
    return ('{"u": "%s", "p": "%s"}' % (user, password)).encode()


async def read_u32_block(reader: asyncio.StreamReader) -> bytes:
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(n)


async def read_reconstruction(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """(name, glb) of an IMAGE/VIDEO reply; name is "" for an error (glb holds the code)."""
    name = (await read_u32_block(reader)).decode()
    return name, await read_u32_block(reader)
