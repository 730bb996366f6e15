"""Clients that hold the TCP front door's shared slots, for the integration tests of tests/integration.

Built on the plain-socket client of `wire_client.py`: an IMAGE upload admitted
and kept open by a trickle of its payload, GET_GLB replies taken a little at a
time, an upload sent slowly in pieces, and a wait for a condition of the
running service.
"""

from __future__ import annotations

import select
import struct
import threading
import time
from collections.abc import Callable

from wire_client import GET_GLB, IMAGE, Conn, Reply, frame, images_payload


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 120.0, every_s: float = 0.1) -> None:
    """Return once `condition()` holds; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(every_s)


def unique(photo: bytes, tag: str) -> bytes:
    """The same JPEG as another upload (decoders ignore bytes after its end marker)."""
    return photo + tag.encode()


def slow_images(
    port: int, source: str, username: str, password: str, photos: list[bytes], *, pieces: int = 4, gap_s: float = 0.5
) -> Reply:
    """LOGIN, then an IMAGE frame written in `pieces` with `gap_s` between them; its reply."""
    with Conn(port, source=source) as c:
        assert c.login(username, password)[0] is True
        data = frame(IMAGE, images_payload(photos))
        step = -(-len(data) // pieces)
        for start in range(0, len(data), step):
            if start:
                time.sleep(gap_s)  # the client's pace, not a wait for the server
            c.send(data[start : start + step])
        return c.read_reconstruction()


class HeldUpload:
    """A logged-in IMAGE upload that is admitted and never completes: its header, then `piece`
    bytes of its one image every `every_s` (never silent for the read timeout, above the minimum
    upload rate), stopping short of its last byte."""

    def __init__(
        self, port: int, source: str, username: str, password: str, *,
        size: int = 6 << 20, piece: int = 24 << 10, every_s: float = 0.5,
    ) -> None:  # fmt: skip
        self.conn = Conn(port, source=source)
        assert self.conn.login(username, password)[0] is True
        image_size = size - 8
        self.conn.send(struct.pack(">BIII", IMAGE, size, 1, image_size) + b"\xff\xd8")
        self._left = image_size - 2 - 1  # the last byte is never sent
        self._piece, self._every_s = piece, every_s
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        try:
            while not self._stop.wait(self._every_s) and self._left > 0:
                n = min(self._piece, self._left)
                self.conn.send(b"\x00" * n)
                self._left -= n
        except OSError as exc:
            self.error = exc

    @property
    def sending(self) -> bool:
        """Still trickling: neither cut off by the server nor out of payload."""
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.conn.close()

    def __enter__(self) -> HeldUpload:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TrickleDownloads:
    """GET_GLB of one hash on `count` connections from one address, each reply taken at most `take`
    bytes every `every_s`: the downloads stay under way (each piece drains well within the read
    timeout) for as long as the reply lasts."""

    def __init__(
        self, port: int, source: str, hash_text: str, count: int, *, take: int = 192 << 10, every_s: float = 0.2
    ) -> None:
        self.conns = [Conn(port, source=source) for _ in range(count)]
        self._heads = [b""] * count  # the first 4 bytes of each reply: its length
        self.taken = [0] * count
        self.ended = [False] * count  # the server closed or reset it
        self._take, self._every_s = take, every_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        for c in self.conns:
            c.send(frame(GET_GLB, hash_text.encode()))
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self) -> None:
        while not self._stop.is_set():
            socks = {c.sock: i for i, c in enumerate(self.conns) if not self.ended[i]}
            readable = select.select(list(socks), [], [], 0)[0] if socks else []
            for sock in readable:
                i = socks[sock]
                try:
                    data = sock.recv(self._take)
                except OSError:
                    data = b""
                with self._lock:
                    if not data:
                        self.ended[i] = True
                        continue
                    if len(self._heads[i]) < 4:
                        self._heads[i] += data[: 4 - len(self._heads[i])]
                    self.taken[i] += len(data)
            self._stop.wait(self._every_s)  # the readers' pace

    def lengths(self) -> list[int | None]:
        """Each reply's length once its first 4 bytes arrived (its download slot is then taken)."""
        with self._lock:
            return [struct.unpack(">I", head)[0] if len(head) == 4 else None for head in self._heads]

    def under_way(self, total: int) -> bool:
        """Every reply still open with less than its `total` bytes taken."""
        with self._lock:
            return not any(self.ended) and all(taken < total for taken in self.taken)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for c in self.conns:
            c.close()

    def __enter__(self) -> TrickleDownloads:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
