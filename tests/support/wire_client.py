"""A plain-socket client of the wire protocol (docs/PROTOCOL.md) for the integration tests.

Deliberately independent of tcp_proxy's codec and scripts/client.py: it writes
and reads the bytes the deployed clients write and read.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import threading
from dataclasses import dataclass

LOGIN, IMAGE, VIDEO, GET_GLB, LIST = 1, 2, 3, 4, 5

_next_address = 10
_address_lock = threading.Lock()


def fresh_address() -> str:
    """A loopback source address no other test uses (IP sessions are per address)."""
    global _next_address
    with _address_lock:
        n = _next_address
        _next_address += 1
    return f"127.0.{n // 250}.{n % 250 + 2}"


def frame(command: int, payload: bytes) -> bytes:
    return struct.pack(">BI", command, len(payload)) + payload


def login_payload(username: str, password: str) -> bytes:
    return json.dumps({"u": username, "p": password}).encode()


def images_payload(images: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(struct.pack(">I", len(images)))
    for data in images:
        out.write(struct.pack(">I", len(data)))
        out.write(data)
    return out.getvalue()


@dataclass
class Reply:
    name: str
    data: bytes

    @property
    def error(self) -> str | None:
        if self.name == "" and self.data.startswith(b"ERROR_"):
            return self.data.decode("ascii")
        return None


class Conn:
    """One TCP connection from a chosen loopback source address."""

    def __init__(self, port: int, *, source: str | None = None, timeout: float = 120.0):
        self.source = source or fresh_address()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((self.source, 0))
        self.sock.connect(("127.0.0.1", port))

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        chunks = []
        left = n
        while left:
            chunk = self.sock.recv(min(left, 1 << 20))
            if not chunk:
                raise ConnectionError(f"closed with {left} of {n} bytes unread")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def read_block(self) -> bytes:
        (length,) = struct.unpack(">I", self.recv_exact(4))
        return self.recv_exact(length)

    def read_reconstruction(self) -> Reply:
        (name_length,) = struct.unpack(">I", self.recv_exact(4))
        assert name_length <= 1024, name_length
        name = self.recv_exact(name_length).decode()
        return Reply(name, self.read_block())

    def at_eof(self, timeout: float = 10.0) -> bool:
        """True when the server closed the connection (reads b"" or a reset)."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(old)

    # commands

    def login(self, username: str, password: str) -> list:
        self.send(frame(LOGIN, login_payload(username, password)))
        return json.loads(self.read_block())

    def images(self, images: list[bytes]) -> Reply:
        self.send(frame(IMAGE, images_payload(images)))
        return self.read_reconstruction()

    def video(self, data: bytes) -> Reply:
        self.send(frame(VIDEO, data))
        return self.read_reconstruction()

    def get_glb(self, hash_text: str) -> bytes:
        self.send(frame(GET_GLB, hash_text.encode()))
        return self.read_block()

    def list(self) -> list | bytes:
        """The logged-in user's GLBs (decoded JSON), or the error code's bytes."""
        self.send(frame(LIST, b""))
        block = self.read_block()
        return block if block.startswith(b"ERROR_") else json.loads(block)
