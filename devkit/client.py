"""The protocol client (tcp_proxy.client) with what the benchmarks add: a chosen source address,
no Nagle delay, and a VIDEO payload generated while it is sent."""

from __future__ import annotations

import socket

from tcp_proxy.client import Client, ServerError
from tcp_proxy.codec import VIDEO


class DevClient(Client):
    """A `Client` whose connection comes from the local address `source` (when given)."""

    def __init__(self, host: str, port: int, *, timeout: float | None = None, source: str | None = None,
                 nodelay: bool = False):  # fmt: skip
        super().__init__(host, port, timeout=timeout)
        self.source, self.nodelay = source, nodelay

    def connect(self) -> None:
        if self.sock is not None:
            return
        if self.source is None:
            super().connect()
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.bind((self.source, 0))
                sock.connect((self.host, self.port))
            except OSError:
                sock.close()
                raise
            self.sock = sock
        if self.nodelay:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def video_stream(self, size: int, chunk: bytes) -> tuple[str, bytes]:
        """A VIDEO of `size` bytes: `chunk` repeated (the last one cut); (name, glb), or ("", the error code)."""

        def parts():
            left = size
            while left:
                part = chunk[: min(left, len(chunk))]
                left -= len(part)
                yield part

        try:
            self._send_stream(VIDEO, size, parts(), False, "video")
            return self._read_reconstruction()
        except ServerError as exc:
            return "", exc.code.encode()
