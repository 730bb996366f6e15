"""Share links in a browser: `/g/<hash>` shows the point cloud, `/g/<hash>.glb` is the file.

The hash is the share link, as on the TCP side (GET_GLB): the same
validation (`GlbStore.locate`), and an unknown, malformed or vanished hash
is a 404. The GLB is streamed from its file or its object in a bucket, the
same way for both (`serve_app.http.range_response`), with `Content-Length`,
an `ETag` (the hash: a stored GLB never changes), `304` for a matching
`If-None-Match` and byte ranges (`Range`, `206`). A scan is private to
whoever holds its link: the page and the file are `Cache-Control: private`,
kept by the browser but never by a shared cache. The page draws the cloud
with three.js, which the set-up script installs from the npm registry
(`.venv/web/node_modules/three`) and the service serves itself under
`/viewer/`, with the viewer module the app uses too (`/app/viewer.js`,
`serve_app.http.app_files`): no CDN, nothing fetched from elsewhere. The page carries link
preview tags (`serve_app.http.share_template`): title, point count (read from
the GLB's JSON chunk), date, and `/g/<hash>.jpg`, the preview picture saved
at export time, when the scan has one (older ones have none: a 404, and the
page names no image). Every route answers `HEAD` with the status and headers
of its GET and no body.
"""

from __future__ import annotations

import json
import logging
import struct
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Mapping

from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from serve_app.config import AppSettings
from serve_app.http.range_response import range_response, without_body
from serve_app.http.share_template import PageFacts, page_html
from serve_app.storage import Database, GlbStore
from serve_app.storage.blob_root import settings_root
from tcp_proxy.errors import FileMissingError, HashNotFoundError, InvalidHashError

log = logging.getLogger(__name__)

GLB_MEDIA_TYPE = "model/gltf-binary"
JPEG_MEDIA_TYPE = "image/jpeg"
GLB_JSON_LIMIT = 4 * 1024 * 1024  # bytes of the GLB's JSON chunk read for the point count, at most
GLB_POINTS_MODE = 0
VIEWER_PREFIX = "/viewer/"  # three.js's files, under this path
VIEWER_PARTS = ("build", "examples/jsm")  # the parts of the npm package the page imports
CHECKOUT_VIEWER = Path(__file__).resolve().parents[2] / ".venv" / "web" / "node_modules" / "three"
JS_TYPES = {".js": "text/javascript", ".mjs": "text/javascript"}
# a stored GLB never changes: the browser keeps it, a shared cache (proxy, CDN) never does
GLB_CACHE_CONTROL = "private, max-age=31536000, immutable"
PAGE_CACHE_CONTROL = "private, no-cache"  # asked again each time: a deleted scan's page must go


class SharePages:
    """Responses of the share routes for one database and storage root."""

    def __init__(self, settings: AppSettings) -> None:
        self._db = Database(settings.storage.database_url)
        self._store = GlbStore(self._db, settings_root(settings.storage))
        self.viewer_dir = Path(settings.share.viewer_dir or CHECKOUT_VIEWER).resolve()
        if not (self.viewer_dir / "build" / "three.module.js").is_file():
            log.warning(
                "three.js not found in %s: share pages offer the download only (run scripts/setup_venv.sh, "
                "or set share.viewer_dir to an npm-installed `three` folder)",
                self.viewer_dir,
            )

    def page(self, hash_text: str, page_url: str = "", *, head: bool = False) -> Response:
        """The HTML page that draws the GLB of `hash_text`, or a 404; page_url: the absolute URL asked for."""
        try:
            key = self._store.locate(hash_text)
        except (InvalidHashError, HashNotFoundError, FileMissingError) as exc:
            return _not_found(exc, head)
        hashed_name = PurePosixPath(key).stem
        facts = PageFacts(
            hashed_name=hashed_name,
            page_url=f"{page_url.rsplit('/', 1)[0]}/{hashed_name}" if page_url else "",  # as stored, not as typed
            point_count=self._point_count(key),
            day=_stored_day(key),
            has_thumbnail=self._has_thumbnail(hash_text),
        )
        response = HTMLResponse(page_html(facts, VIEWER_PREFIX), headers={"Cache-Control": PAGE_CACHE_CONTROL})
        return without_body(response) if head else response

    def glb(self, hash_text: str, request_headers: Mapping[str, str], *, head: bool = False) -> Response:
        """The GLB file (ranges honoured), 304 when the client has it, or a 404."""
        try:
            key = self._store.locate(hash_text)
        except (InvalidHashError, HashNotFoundError, FileMissingError) as exc:
            return _not_found(exc, head)
        return self._stored_file(key, ".glb", GLB_MEDIA_TYPE, request_headers, head)

    def thumbnail(self, hash_text: str, request_headers: Mapping[str, str], *, head: bool = False) -> Response:
        """The preview picture (JPEG) saved with the GLB, 304 when the client has it, or a 404 (none saved)."""
        try:
            key = self._store.locate_thumbnail(hash_text)
        except (InvalidHashError, HashNotFoundError, FileMissingError) as exc:
            return _not_found(exc, head)
        return self._stored_file(key, ".jpg", JPEG_MEDIA_TYPE, request_headers, head)

    def _stored_file(
        self, key: str, suffix: str, media_type: str, request_headers: Mapping[str, str], head: bool
    ) -> Response:
        """A file that never changes once stored, by its key: ETag from its name, ranges, 304."""
        name = PurePosixPath(key).stem
        etag = f'"{name}"' if suffix == ".glb" else f'"{name}{suffix}"'
        headers = {"ETag": etag, "Cache-Control": GLB_CACHE_CONTROL}
        if etag in [tag.strip() for tag in request_headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        try:
            file, size = self._store.root.open(key)
        except FileNotFoundError:  # deleted since it was located
            return _not_found(FileMissingError(f"the file of {name} is missing"), head)
        headers["Content-Disposition"] = f'inline; filename="{name}{suffix}"'
        return range_response(file, size, request_headers, headers, media_type, head=head)

    def _has_thumbnail(self, hash_text: str) -> bool:
        try:
            self._store.locate_thumbnail(hash_text)
        except (InvalidHashError, HashNotFoundError, FileMissingError):
            return False
        return True

    def _point_count(self, key: str) -> int | None:
        """Points in the GLB (its point primitives' vertices), from its JSON chunk; None when unreadable."""
        try:
            file, _size = self._store.root.open(key)
        except OSError:
            return None
        with file:
            return glb_point_count(file.read(20), file.read)

    def viewer_file(self, relative: str) -> Response:
        """One file of three.js's `build/` or `examples/jsm/`, nothing else."""
        path = (self.viewer_dir / relative).resolve()
        allowed = any(path.is_relative_to(self.viewer_dir / part) for part in VIEWER_PARTS)
        if not allowed or path.suffix not in JS_TYPES or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, media_type=JS_TYPES[path.suffix], headers={"Cache-Control": "public, max-age=86400"})

    def close(self) -> None:
        self._db.dispose()


def _not_found(exc: Exception, head: bool = False) -> Response:
    message = getattr(exc, "code", "ERROR_HASH_NOT_FOUND")
    response = PlainTextResponse(f"no shared 3D scan here ({message})\n", status_code=404)
    return without_body(response) if head else response


def _stored_day(key: str) -> date | None:
    """The UTC day a GLB was stored, from its key `out/YYYY-MM-DD/<hash>.glb`."""
    parts = PurePosixPath(key).parts
    try:
        return date.fromisoformat(parts[-2]) if len(parts) >= 2 else None
    except ValueError:
        return None


def glb_point_count(header: bytes, read) -> int | None:
    """Vertices of the point primitives of a GLB, from its 20-byte header and `read(n)` of what follows."""
    if len(header) < 20 or header[:4] != b"glTF":
        return None
    json_length, chunk_type = struct.unpack_from("<II", header, 12)
    if chunk_type != 0x4E4F534A or json_length > GLB_JSON_LIMIT:  # "JSON"
        return None
    try:
        document = json.loads(read(json_length))
        accessors = document.get("accessors", [])
        return sum(
            int(accessors[primitive["attributes"]["POSITION"]]["count"])
            for mesh in document.get("meshes", [])
            for primitive in mesh.get("primitives", [])
            if primitive.get("mode", 4) == GLB_POINTS_MODE and "POSITION" in primitive.get("attributes", {})
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None
