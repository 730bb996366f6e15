"""An open file of unknown locality as an HTTP response, honouring one byte range (`Range: bytes=...`).

Starlette's FileResponse does this for a local file; a GLB in an object store
is served here instead: the requested span is read a piece at a time (each
piece one ranged read of the object), so memory holds one piece, never the
whole GLB. Several ranges in one request, or a Range header that does not
parse, get the whole file (RFC 9110 lets a server ignore Range); a range
that starts past the end is a 416.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Iterator, Mapping

from starlette.responses import Response, StreamingResponse

PIECE = 256 * 1024  # bytes per read of the span
_SINGLE_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unsatisfiable(Exception):
    """A well-formed range that selects nothing of the file."""


def requested_span(range_header: str, size: int) -> tuple[int, int] | None:
    """(start, stop) of the one range asked for, or None for the whole file; raises Unsatisfiable."""
    match = _SINGLE_RANGE.match(range_header or "")
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # `bytes=-N`: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size
    start = int(first)
    stop = size if last == "" else min(int(last) + 1, size)
    if start >= size or stop <= start:
        raise Unsatisfiable
    return start, stop


def range_response(
    file: BinaryIO, size: int, request_headers: Mapping[str, str], headers: Mapping[str, str], media_type: str
) -> Response:
    """200 with the file, 206 with the requested span, or 416; `file` is closed in every case."""
    try:
        span = requested_span(request_headers.get("range", ""), size)
    except Unsatisfiable:
        file.close()
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, stop = span or (0, size)
    reply_headers = {**headers, "Accept-Ranges": "bytes", "Content-Length": str(stop - start)}
    if span is not None:
        reply_headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    return StreamingResponse(
        _pieces(file, start, stop), status_code=206 if span else 200, headers=reply_headers, media_type=media_type
    )


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
