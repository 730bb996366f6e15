"""The wire protocol of docs/PROTOCOL.md, without any I/O.

`RequestReader` turns the bytes a client sends into events; the `encode_*`
functions turn answers into the bytes of a reply. Nothing here touches a
socket, a file or a clock, so every byte can be tested directly.

Usage: feed bytes with `receive_data` (b"" at end of stream), then call
`next_event` until it returns `NEED_DATA`. Each frame of a known command
starts with `FrameStart`; then comes exactly one of `Login`,
(`ImageStart` `ImageChunk`...)... `ImagesEnd`, `VideoChunk`... `VideoEnd`,
`GetGlb`, `ListGlbs` or `Rejected` (which may also end an IMAGE frame whose
framing turns out not to add up), unless the caller
answered the frame early and called `skip_payload`. An unknown command gives
only `Rejected(command, UNKNOWN_COMMAND)` and its payload is skipped, so the
connection stays in step. A frame that cannot be read safely raises
`ProtocolError`; the reader is then unusable.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from datetime import timezone
from typing import Sequence, Union

from . import errors
from .backend import GlbInfo
from .upload_rules import too_many_images

LOGIN = 1
IMAGE = 2
VIDEO = 3
GET_GLB = 4
LIST = 5  # an extension: deployed apps never send it
COMMAND_NAMES = {LOGIN: "LOGIN", IMAGE: "IMAGE", VIDEO: "VIDEO", GET_GLB: "GET_GLB", LIST: "LIST"}

HEADER = struct.Struct(">BI")
U32 = struct.Struct(">I")
MAX_NAME_BYTES = 1024  # the app rejects longer names
SMALL_PAYLOAD_BYTES = 64 * 1024  # LOGIN, GET_GLB and LIST payloads are held whole; cap them

UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
ERROR_PAYLOAD_TOO_LARGE = errors.PayloadTooLargeError.code
ERROR_IMAGE_REQUEST = errors.ImageRequestError.code
ERROR_TOO_MANY_IMAGES = errors.TooManyImagesError.code
ERROR_INTERNAL = errors.ServiceError.code
ERROR_BUSY = errors.BusyError.code
# codes that only the proxy sends
ERROR_INCOMPLETE_REQUEST = errors.IncompleteRequestError.code  # stream ended inside a frame
ERROR_READ_TIMEOUT = errors.ReadTimeoutError.code  # client went silent inside a frame


def command_name(command: int) -> str:
    """A label for logs and metrics: LOGIN, IMAGE, VIDEO, GET_GLB or UNKNOWN."""
    return COMMAND_NAMES.get(command, "UNKNOWN")


class ProtocolError(Exception):
    """A frame that cannot be read safely; the connection must be closed.

    `command` is the command byte whose reply is still owed (answer it with
    `encode_error(command, code)` before closing), or None when nothing is owed.
    """

    def __init__(self, message: str, *, code: str, command: int | None, unread: int = 0):
        """unread: payload bytes the client announced and may still send (an over-limit frame)."""
        super().__init__(message)
        self.code = code
        self.command = command
        self.unread = unread


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()


@dataclass(frozen=True)
class FrameStart:
    """The header of a known command was read; `length` payload bytes follow."""

    command: int
    length: int


@dataclass(frozen=True)
class Login:
    """A LOGIN request; both fields are None when the payload was malformed."""

    username: str | None
    password: str | None = field(repr=False)  # never printed

    @property
    def valid(self) -> bool:
        return self.username is not None and self.password is not None


@dataclass(frozen=True)
class ImageStart:
    """The next image of an IMAGE request: `size` bytes follow as ImageChunk events."""

    size: int


@dataclass(frozen=True)
class ImageChunk:
    """The next piece of the current image, in order (never held by the codec)."""

    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"ImageChunk(bytes={len(self.data)})"


@dataclass(frozen=True)
class ImagesEnd:
    """The IMAGE request is complete and its framing adds up: `count` images were sent."""

    count: int


@dataclass(frozen=True)
class VideoChunk:
    """The next piece of a VIDEO payload, in order."""

    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"VideoChunk(bytes={len(self.data)})"


@dataclass(frozen=True)
class VideoEnd:
    """The VIDEO payload is complete."""


@dataclass(frozen=True)
class GetGlb:
    """A GET_GLB request; the text is as sent (invalid UTF-8 replaced)."""

    hash_text: str


@dataclass(frozen=True)
class ListGlbs:
    """A LIST request (its payload, normally empty, is ignored)."""


@dataclass(frozen=True)
class Rejected:
    """The codec refused the frame; answer `encode_error(command, code)`.

    Its remaining payload is skipped, so the next frame is read normally.
    """

    command: int
    code: str


@dataclass(frozen=True)
class ConnectionClosed:
    """The client ended the stream between frames."""


Event = Union[
    FrameStart, Login, ImageStart, ImageChunk, ImagesEnd, VideoChunk, VideoEnd, GetGlb, ListGlbs, Rejected, ConnectionClosed
]

# reader states
_HEADER, _BODY, _SKIP, _ERROR = "header", "body", "skip", "error"


class RequestReader:
    """Bytes in, request events out (server side of one connection)."""

    def __init__(self, *, max_payload_bytes: int, max_images: int):
        self.max_payload_bytes = max_payload_bytes
        self.max_images = max_images
        self._buf = bytearray()
        self._eof = False
        self._state = _HEADER
        self._error: ProtocolError | None = None
        self._command = 0
        self._remaining = 0  # payload bytes of the current frame not yet consumed
        # IMAGE parsing: the framing is followed, the bytes are passed on
        self._count: int | None = None
        self._images_done = 0
        self._image_left: int | None = None  # bytes of the current image still to come

    # -- input ---------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Add bytes from the client; b"" means the client ended the stream."""
        if self._eof:
            if data:
                raise RuntimeError("data received after the end of the stream")
            return
        if data:
            self._buf += data
        else:
            self._eof = True

    def skip_payload(self) -> None:
        """Drop the rest of the current frame: the caller has answered it already."""
        if self._state != _BODY:
            raise RuntimeError("no frame payload to skip")
        self._enter_skip()

    @property
    def in_frame(self) -> bool:
        """True while a frame has begun but is not fully read."""
        return self._state in (_BODY, _SKIP) or (self._state == _HEADER and bool(self._buf))

    @property
    def pending_command(self) -> int | None:
        """The command byte of a partly read frame still owed a reply, else None."""
        if self._state == _BODY:
            return self._command
        if self._state == _HEADER and self._buf:
            return self._buf[0]
        return None

    # -- events --------------------------------------------------------
    def next_event(self) -> Event | _NeedData:
        """The next event, or NEED_DATA when more bytes are needed."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except ProtocolError as exc:
            self._state = _ERROR
            self._error = exc
            raise

    def _next(self) -> Event | _NeedData:
        while True:
            if self._state == _SKIP:
                n = min(self._remaining, len(self._buf))
                del self._buf[:n]
                self._remaining -= n
                if self._remaining:
                    return self._starved(None)
                self._state = _HEADER
                continue
            if self._state == _HEADER:
                return self._read_header()
            return self._read_body()

    def _starved(self, command: int | None) -> _NeedData:
        if self._eof:
            raise ProtocolError("stream ended inside a frame", code=ERROR_INCOMPLETE_REQUEST, command=command)
        return NEED_DATA

    def _read_header(self) -> Event | _NeedData:
        if len(self._buf) < HEADER.size:
            if not self._buf and self._eof:
                return ConnectionClosed()
            return self._starved(self._buf[0] if self._buf else None)
        command, length = HEADER.unpack_from(self._buf)
        del self._buf[: HEADER.size]
        self._command, self._remaining = command, length
        if command not in COMMAND_NAMES:
            if length > self.max_payload_bytes:
                raise ProtocolError("unknown command, payload too large", code=UNKNOWN_COMMAND, command=command)
            self._enter_skip()
            return Rejected(command, UNKNOWN_COMMAND)
        limit = SMALL_PAYLOAD_BYTES if command in (LOGIN, GET_GLB, LIST) else self.max_payload_bytes
        if length > limit:
            raise ProtocolError(
                f"declared payload {length} over the limit {limit}",
                code=ERROR_PAYLOAD_TOO_LARGE,
                command=command,
                unread=max(0, length - len(self._buf)),
            )
        self._state = _BODY
        self._count, self._images_done, self._image_left = None, 0, None
        return FrameStart(command, length)

    def _enter_skip(self) -> None:
        self._state = _SKIP

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._remaining -= n
        return data

    def _frame_done(self) -> None:
        self._state = _HEADER

    def _read_body(self) -> Event | _NeedData:
        command = self._command
        if command == VIDEO:
            if self._remaining == 0:
                self._frame_done()
                return VideoEnd()
            if not self._buf:
                return self._starved(command)
            return VideoChunk(self._take(min(self._remaining, len(self._buf))))
        if command == IMAGE:
            return self._read_images()
        if len(self._buf) < self._remaining:
            return self._starved(command)
        payload = self._take(self._remaining)
        self._frame_done()
        if command == LOGIN:
            return _parse_login(payload)
        if command == LIST:
            return ListGlbs()
        return GetGlb(payload.decode("utf-8", errors="replace"))

    def _reject(self, code: str) -> Rejected:
        self._enter_skip()
        return Rejected(self._command, code)

    def _read_images(self) -> Event | _NeedData:
        if self._count is None:
            if self._remaining < U32.size:
                return self._reject(ERROR_IMAGE_REQUEST)
            if len(self._buf) < U32.size:
                return self._starved(IMAGE)
            (count,) = U32.unpack(self._take(U32.size))
            if too_many_images(count, self.max_images):
                return self._reject(ERROR_TOO_MANY_IMAGES)
            if count * U32.size > self._remaining:
                return self._reject(ERROR_IMAGE_REQUEST)
            self._count = count
        while True:
            if self._image_left is None:
                left = self._count - self._images_done
                if left == 0:
                    if self._remaining:
                        return self._reject(ERROR_IMAGE_REQUEST)
                    self._frame_done()
                    return ImagesEnd(self._count)
                if len(self._buf) < U32.size:
                    return self._starved(IMAGE)
                (size,) = U32.unpack(self._take(U32.size))
                # the images after this one still need their size fields
                if size > self._remaining - (left - 1) * U32.size:
                    return self._reject(ERROR_IMAGE_REQUEST)
                self._image_left = size
                return ImageStart(size)
            if self._image_left == 0:
                self._image_left = None
                self._images_done += 1
                continue
            if not self._buf:
                return self._starved(IMAGE)
            part = self._take(min(self._image_left, len(self._buf)))
            self._image_left -= len(part)
            return ImageChunk(part)

def _parse_login(payload: bytes) -> Login:
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Login(None, None)
    if not isinstance(obj, dict):
        return Login(None, None)
    username, password = obj.get("u"), obj.get("p")
    if not isinstance(username, str) or not isinstance(password, str):
        return Login(None, None)
    return Login(username, password)


# -- replies ------------------------------------------------------------
def _sized(data: bytes) -> bytes:
    return U32.pack(len(data)) + data


def encode_login(ok: bool, is_vip: bool = False) -> bytes:
    """`u32 length` + `[ok,is_vip]` (compact JSON); a failure is always [false,false]."""
    text = "[true,true]" if ok and is_vip else "[true,false]" if ok else "[false,false]"
    return _sized(text.encode("ascii"))


def reconstruction_header(name: str, glb_length: int) -> bytes:
    """The bytes before the GLB in an IMAGE/VIDEO reply."""
    raw = name.encode("utf-8")
    if not raw or len(raw) > MAX_NAME_BYTES:
        raise ValueError(f"reply name must be 1..{MAX_NAME_BYTES} bytes, got {len(raw)}")
    return U32.pack(len(raw)) + raw + U32.pack(glb_length)


def glb_header(glb_length: int) -> bytes:
    """The bytes before the GLB in a GET_GLB reply."""
    return U32.pack(glb_length)


def encode_list(glbs: Sequence[GlbInfo]) -> bytes:
    """LIST success: `u32 length` + a compact UTF-8 JSON array, one object per GLB, in the given order."""
    entries = [
        {
            "hash": glb.hashed_name,
            "original_name": glb.original_name,
            "file_size": glb.file_size,
            "created_at": _iso_utc(glb.created_at),
        }
        for glb in glbs
    ]
    return _sized(json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace"))


def _iso_utc(moment) -> str | None:
    """ISO 8601 in UTC with a `Z`; naive times are taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="seconds") + "Z"


def encode_error(command: int, code: str) -> bytes:
    """An error in the shape the command's reply always has (docs/PROTOCOL.md, Errors)."""
    if command == LOGIN:
        return encode_login(False)
    raw = code.encode("ascii")
    if command in (IMAGE, VIDEO):
        return U32.pack(0) + _sized(raw)
    return _sized(raw)  # GET_GLB and unknown commands
