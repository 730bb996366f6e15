"""An open file, local or in an object store, as an HTTP response honouring one byte range (`Range: bytes=...`).

The requested span is read a piece at a time (in a bucket, each piece one
ranged read of the object), so memory holds one piece, never the whole GLB.
As RFC 9110 allows, a Range that is invalid (not `bytes=`, a last position
before the first, not ASCII digits), asks for several ranges, or comes with
an `If-Range` other than the ETag gets the whole file (200); a valid range
that starts past the end is a 416 with `Content-Range: bytes */<size>`.
Positions of any length are read without converting thousands of digits.
A `HEAD` gets the same status and headers as the GET would, and no body.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Iterator, Mapping

from starlette.responses import Response, StreamingResponse

PIECE = 256 * 1024  # bytes per read of the span
_SINGLE_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.IGNORECASE | re.ASCII)
BEYOND_ANY_FILE = 10**18  # a position with more digits than this stands for "past the end"


class Unsatisfiable(Exception):
    """A well-formed range that selects nothing of the file."""


def requested_span(range_header: str, size: int) -> tuple[int, int] | None:
    """(start, stop) of the one range asked for, or None for the whole file; raises Unsatisfiable."""
    match = _SINGLE_RANGE.match(range_header or "")
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # `bytes=-N`: the last N bytes
        suffix = _position(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    if last != "" and _magnitude(last) < _magnitude(first):
        return None  # invalid: ignored
    start = _position(first)
    if start >= size:
        raise Unsatisfiable
    stop = size if last == "" else min(_position(last) + 1, size)
    return start, stop


def _magnitude(digits: str) -> tuple[int, str]:
    """What orders numbers written in ASCII digits, of any length, as their values."""
    significant = digits.lstrip("0")
    return len(significant), significant


def _position(digits: str) -> int:
    """The number of ASCII `digits`, or BEYOND_ANY_FILE when it is at least that large."""
    significant = digits.lstrip("0") or "0"
    if len(significant) >= len(str(BEYOND_ANY_FILE)):
        return BEYOND_ANY_FILE
    return int(significant)


def range_response(
    file: BinaryIO,
    size: int,
    request_headers: Mapping[str, str],
    headers: Mapping[str, str],
    media_type: str,
    *,
    head: bool = False,
) -> Response:
    """200 with the file, 206 with the requested span, or 416; `file` is closed in every case.

    `headers` go on every answer; an `ETag` among them is what `If-Range` must match.
    head: answer a HEAD: the same status and headers, no body (the file is closed unread).
    """
    if_range = request_headers.get("if-range")
    range_header = request_headers.get("range", "") if if_range in (None, headers.get("ETag")) else ""
    try:
        span = requested_span(range_header, size)
    except Unsatisfiable:
        file.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, stop = span or (0, size)
    reply_headers = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(stop - start)}
    if span is not None:
        reply_headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if head:
        file.close()
        return headers_only(206 if span else 200, reply_headers, media_type)
    return StreamingResponse(
        _pieces(file, start, stop), status_code=206 if span else 200, headers=reply_headers, media_type=media_type
    )


def headers_only(status_code: int, headers: Mapping[str, str], media_type: str | None = None) -> Response:
    """A response with exactly these headers (its `Content-Length` included) and no body: a HEAD's answer."""
    response = Response(status_code=status_code, media_type=media_type)
    kept = [(b"content-type", response.headers["content-type"].encode("latin-1"))] if media_type else []
    response.raw_headers = kept + [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    return response


def without_body(response: Response) -> Response:
    """The HEAD form of a response whose body is in memory: its status and headers, no body."""
    reply = Response(status_code=response.status_code)
    reply.raw_headers = list(response.raw_headers)
    return reply


def _pieces(file: BinaryIO, start: int, stop: int) -> Iterator[bytes]:
    """The bytes of [start, stop) at most PIECE at a time (Starlette iterates this in a thread)."""
    try:
        file.seek(start)
        left = stop - start
        while left > 0:
            piece = file.read(min(PIECE, left))
            if not piece:
                break  # shorter than it said: end the body rather than loop
            left -= len(piece)
            yield piece
    finally:
        file.close()
