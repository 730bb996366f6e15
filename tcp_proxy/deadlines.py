"""How long the server waits for a client's next bytes: the read deadlines of one connection.

No I/O and no clock of its own (times are passed in), so every rule is
tested directly. A connection is refused more time than these allow:

* before its first byte: `first_byte_timeout_s` from the connect;
* between frames: `idle_timeout_s` of silence once the connection has acted as
  a user (a LOGIN, or a request its address binding answered), and
  `idle_timeout_before_login_s` until then (the app sends its request on
  connecting; a connection that never logs in holds no slot for long);
* inside any frame: `read_timeout_s` of silence;
* a small frame (LOGIN, GET_GLB, LIST, an unknown command's header) must be
  complete `small_frame_timeout_s` after its first byte, however steadily
  it dribbles (a slowloris holds a connection by sending one byte now and
  then);
* a large frame (IMAGE, VIDEO, or a payload being skipped) must keep up an
  average of `min_upload_bytes_per_s` after a grace of `upload_grace_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import IMAGE, VIDEO
from .settings import ProxySettings

LARGE_FRAMES = (IMAGE, VIDEO)


@dataclass(frozen=True)
class MinRate:
    """An average rate a transfer must keep after a grace: byte B is due grace + B / rate after its start.

    One rule for uploads (`upload_grace_s`, `min_upload_bytes_per_s`), the discarding of an over-limit
    upload, and replies (`download_grace_s`, `min_download_bytes_per_s`)."""

    grace_s: float
    bytes_per_s: float

    @classmethod
    def upload(cls, settings: ProxySettings) -> "MinRate":
        return cls(settings.upload_grace_s, settings.min_upload_bytes_per_s)

    @classmethod
    def download(cls, settings: ProxySettings) -> "MinRate":
        return cls(settings.download_grace_s, settings.min_download_bytes_per_s)

    def due(self, started: float, transferred: int) -> float:
        """When the transfer begun at `started` must have moved `transferred` bytes."""
        return started + self.grace_s + transferred / self.bytes_per_s


@dataclass
class ReadDeadlines:
    """The read deadlines of one connection; tell it what arrived and when frames end."""

    settings: ProxySettings
    connected_at: float
    frame_started: float | None = None  # first byte of the frame under way
    frame_bytes: int = 0  # bytes received since then
    any_bytes: bool = False
    logged_in: bool = False  # the connection has acted as a user

    def received(self, count: int, in_frame: bool, now: float) -> None:
        """`count` bytes arrived at `now`; `in_frame`: a frame is under way after them."""
        if count:
            self.any_bytes = True
        if in_frame and self.frame_started is None:
            self.frame_started, self.frame_bytes = now, 0
        if self.frame_started is not None:
            self.frame_bytes += count

    def frame_ended(self) -> None:
        """The frame was answered (or refused and skipped): the next one starts its own clock."""
        self.frame_started, self.frame_bytes = None, 0

    def timeout(self, in_frame: bool, command: int | None, now: float) -> float:
        """Seconds the next read may take; 0 means the deadline has passed.

        command: the command of the frame under way (None while its payload is skipped).
        """
        s = self.settings
        if not in_frame:
            if not self.any_bytes:
                return max(0.0, self.connected_at + s.first_byte_timeout_s - now)
            return s.idle_timeout_s if self.logged_in else min(s.idle_timeout_s, s.idle_timeout_before_login_s)
        started = self.frame_started if self.frame_started is not None else now
        if command is None or command in LARGE_FRAMES:
            complete_by = MinRate.upload(s).due(started, self.frame_bytes)
        else:
            complete_by = started + s.small_frame_timeout_s
        return max(0.0, min(s.read_timeout_s, complete_by - now))
