"""`MultipartUpload`: a browser's multipart/form-data upload, received piece by piece into a spool file.

The HTTP ingress forwards a request body as it arrives (`serve_app.http.api`);
the TCP ingress feeds each piece here, and the files go to a file of its
spool folder as they come, as an IMAGE/VIDEO upload's payload does on the
TCP path: photos back to back (their sizes noted, so `Spool.map_parts` cuts
them out again), or the one video. Nothing is held in memory but the piece
being parsed.

A part's headers are checked as soon as they are read, so a wrong upload is
refused before the rest of it arrives: only file parts, named `photos` (up
to `max_images`) or `video` (one, where the account may send videos), never
both. The body may not run past its Content-Length, and must end where it
said it would, with the closing boundary.
"""

from __future__ import annotations

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from serve_app.http.errors import BadRequestError
from tcp_proxy.errors import IncompleteRequestError, PayloadTooLargeError, TooManyImagesError, VipRequiredError
from tcp_proxy.spool import Spool
from tcp_proxy.upload_rules import too_many_images

FIELDS = ("photos", "video")


class MultipartUpload:
    """One upload's parser and spool file; `kind` and `sizes` tell what it held once `finish` returned."""

    def __init__(self, boundary: str, declared: int, spool: Spool, *, max_images: int, video_allowed: bool) -> None:
        """declared: the Content-Length; video_allowed: whether this account may send a video."""
        self.spool = spool
        self.declared = declared
        self.received = 0
        self.kind: str | None = None  # "photos" or "video", from the first part
        self.sizes: list[int] = []  # each file's bytes, in order
        self._max_images = max_images
        self._video_allowed = video_allowed
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._to_write: list[bytes] = []  # file data parsed from the latest piece
        self._ended = False
        self._parser = MultipartParser(
            boundary.encode("latin-1"),
            callbacks={
                "on_part_begin": self._part_begins,
                "on_header_field": self._header_name_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_ends,
                "on_headers_finished": self._headers_end,
                "on_part_data": self._part_data,
                "on_end": self._body_ends,
            },
        )

    async def feed(self, piece: bytes) -> None:
        """Parse the next piece of the body and write its file data to the spool file."""
        self.received += len(piece)
        if self.received > self.declared:
            raise PayloadTooLargeError(f"the upload is longer than its Content-Length ({self.declared} bytes)")
        try:
            self._parser.write(piece)
        except MultipartParseError as exc:
            raise BadRequestError(f"not a valid multipart body: {exc}") from None
        data, self._to_write = self._to_write, []
        for chunk in data:
            await self.spool.write(chunk)

    async def finish(self) -> str:
        """Check that the body is whole; write what is pending and close the file; its path."""
        if self.received < self.declared:
            raise IncompleteRequestError(f"the upload ended after {self.received} of its {self.declared} bytes")
        if not self._ended:
            raise BadRequestError("the multipart body has no closing boundary")
        if not self.sizes:
            raise BadRequestError("send files in field photos, or one in field video")
        return await self.spool.finish()

    # -- parser callbacks (run inside `feed`) ---------------------------------------------------

    def _part_begins(self) -> None:
        self._headers = {}

    def _header_name_data(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_ends(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name, self._header_value = b"", b""

    def _headers_end(self) -> None:
        """A part's headers are read: refuse it now if it may not be part of this upload."""
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("latin-1")
        if disposition != b"form-data" or name not in FIELDS:
            raise BadRequestError("send files in field photos, or one in field video")
        if b"filename" not in options:
            raise BadRequestError("only files are accepted")
        if self.kind is not None and name != self.kind:
            raise BadRequestError("send photos or one video, not both")
        self.kind = name
        if name == "video" and self.sizes:
            raise BadRequestError("send exactly one video")
        if name == "video" and not self._video_allowed:
            raise VipRequiredError("videos are for VIP accounts")
        if name == "photos" and too_many_images(len(self.sizes) + 1, self._max_images):
            raise TooManyImagesError(f"at most {self._max_images} photos per reconstruction")
        self.sizes.append(0)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._to_write.append(bytes(data[start:end]))
        self.sizes[-1] += end - start

    def _body_ends(self) -> None:
        self._ended = True
