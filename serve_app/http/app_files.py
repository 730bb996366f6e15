"""The browser app's static files (`serve_app/http/static/`): `GET /` and `GET /app/<path>`.

Plain files, no build step: the page, its ES modules and its style sheet.
Only a file inside the folder, named by a clean relative path (no `..`, no
hidden part, no backslash) and with a known type, is served; anything else
is a 404. The files change with each release of the service, so the browser
keeps them but asks again each time (`no-cache` with an `ETag`, 304 when it
still has them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

from starlette.responses import FileResponse, PlainTextResponse, Response

APP_DIR = Path(__file__).resolve().parent / "static"
INDEX = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
}
APP_CACHE_CONTROL = "no-cache"  # kept, but revalidated: a new release shows at once
MAX_PATH = 200  # characters of a relative path, at most


class AppFiles:
    """Responses for the files of one folder (the shipped app by default)."""

    def __init__(self, root: Path = APP_DIR) -> None:
        self.root = root.resolve()

    def locate(self, relative: str) -> Path | None:
        """The file `relative` names inside the folder, or None when it is unsafe, unknown or absent."""
        if not relative or len(relative) > MAX_PATH or "\\" in relative or "\x00" in relative:
            return None
        if any(part in ("", ".", "..") or part.startswith(".") for part in relative.split("/")):  # "/x" too
            return None
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or path.suffix not in MEDIA_TYPES or not path.is_file():
            return None
        return path

    def file(self, relative: str, request_headers: Mapping[str, str]) -> Response:
        """The file, a 304 when the browser's copy is current, or a 404 (a `HEAD` gets the headers only)."""
        path = self.locate(relative)
        if path is None:
            return PlainTextResponse("not found\n", status_code=404)
        stat = path.stat()
        etag = '"' + hashlib.sha256(f"{relative}:{stat.st_mtime_ns}:{stat.st_size}".encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": APP_CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
        if etag in [tag.strip() for tag in request_headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=headers)

    def index(self, request_headers: Mapping[str, str]) -> Response:
        """The app's page."""
        return self.file(INDEX, request_headers)
