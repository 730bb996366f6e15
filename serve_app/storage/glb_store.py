"""GLB files on disk, each paired with its `glb_files` row.

`save` inserts the row first, which claims the hash (the column is unique),
then writes `<storage_root>/out/YYYY-MM-DD/<hash>.glb` (UTC date) through a
temp file in the same folder (fsync, then `os.replace`) and commits. If any
step fails, the file and the row are both gone; a save that finds its hash
taken fails before it touches any file. The row's `file_path` is stored
relative to the storage root. Lookups validate the hash first and never open a
path outside the storage root.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from serve_app.storage.database import Database
from serve_app.storage.glb_download import FileDownload
from serve_app.storage.hashes import new_hashed_name, normalize_hash
from serve_app.storage.models import GlbFile, utcnow
from serve_app.storage.paths import OUT_DIR, relative_glb_path, resolve_inside
from tcp_proxy.backend import GlbInfo
from tcp_proxy.errors import FileMissingError, HashNotFoundError

log = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"  # unfinished writes: `.<hash>.glb.<random>.tmp`, found by the consistency check
ORIGINAL_NAME_CHARS = GlbFile.__table__.c.original_name.type.length


@dataclass(frozen=True)
class StoredGlb:
    """A saved GLB: its share hash, absolute file path and size in bytes."""

    hashed_name: str
    file_path: Path
    file_size: int


class GlbStore:
    """Saves and finds GLB files under one storage root."""

    def __init__(self, db: Database, storage_root: str | os.PathLike[str]):
        self._db = db
        self.root = Path(storage_root).resolve()

    def save(
        self,
        glb: bytes,
        user_id: int,
        original_name: str,
        is_public: bool = False,
        source_digest: str | None = None,
    ) -> StoredGlb:
        """Write the file and its row together; on any failure neither remains.

        source_digest: what the GLB was computed from (the result cache's key), if known.
        """
        hashed_name = new_hashed_name()
        relative_path = relative_glb_path(utcnow().date(), hashed_name)
        final_path = self.root / relative_path
        row = GlbFile(
            hashed_name=hashed_name,
            original_name=_storable_name(original_name),
            file_path=relative_path,
            user_id=user_id,
            file_size=len(glb),
            is_public=is_public,
            source_digest=source_digest,
        )
        path_is_ours = False
        try:
            with self._db.session() as session:
                session.add(row)
                session.flush()  # a taken hash (or an unknown user) fails here, before any file is written
                path_is_ours = True
                _write_atomically(final_path, glb)
        except BaseException:
            if path_is_ours:
                final_path.unlink(missing_ok=True)
            raise
        return StoredGlb(hashed_name=hashed_name, file_path=final_path, file_size=len(glb))

    def path_for(self, hash_text: str) -> Path:
        """The file of a typed hash; raises InvalidHashError, HashNotFoundError or FileMissingError."""
        hashed_name = normalize_hash(hash_text)
        with self._db.session() as session:
            stored_path = session.scalar(select(GlbFile.file_path).where(GlbFile.hashed_name == hashed_name))
        if stored_path is None:
            raise HashNotFoundError(f"no GLB with hash {hashed_name}")
        path = resolve_inside(self.root, stored_path)
        if path is None or not path.is_relative_to(self.root / OUT_DIR) or path.suffix != ".glb":
            # only GLB files under <root>/out/ are ever served: never the database, never anything else
            log.warning("row of %s points outside <storage root>/out/*.glb: %r", hashed_name, stored_path)
            raise FileMissingError(f"the file of {hashed_name} is not a GLB under the storage root's out/")
        if not path.is_file():
            raise FileMissingError(f"the file of {hashed_name} is missing")
        return path

    def open(self, hash_text: str) -> FileDownload:
        """The GLB file of a typed hash, opened for streaming (same checks and errors as `read`)."""
        return FileDownload(self.path_for(hash_text))

    def read(self, hash_text: str) -> bytes:
        """The GLB bytes of a typed hash (same checks and errors as `path_for`)."""
        path = self.path_for(hash_text)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FileMissingError(f"the file of {path.stem} is missing") from None

    def find_by_digest(self, user_id: int, source_digest: str, since: datetime | None = None) -> str | None:
        """The hashed name of the user's newest GLB computed from `source_digest` whose file is there
        (stored at or after `since`, naive UTC, when given)."""
        query = (
            select(GlbFile.hashed_name, GlbFile.file_path)
            .where(GlbFile.user_id == user_id, GlbFile.source_digest == source_digest)
            .order_by(GlbFile.created_at.desc(), GlbFile.id.desc())
        )
        if since is not None:
            query = query.where(GlbFile.created_at >= since)
        with self._db.session() as session:
            rows = session.execute(query).all()
        for hashed_name, stored_path in rows:
            path = resolve_inside(self.root, stored_path)
            if path is not None and path.is_file():
                return hashed_name
        return None

    def list_for_user(self, user_id: int, limit: int) -> list[GlbInfo]:
        """The user's GLBs, newest first (ties: the later row first), at most `limit`."""
        query = (
            select(GlbFile)
            .where(GlbFile.user_id == user_id)
            .order_by(GlbFile.created_at.desc(), GlbFile.id.desc())
            .limit(max(0, limit))
        )
        with self._db.session() as session:
            rows = session.scalars(query).all()
            return [
                GlbInfo(row.hashed_name, row.original_name or "", row.file_size or 0, row.created_at) for row in rows
            ]


def _storable_name(original_name: str) -> str:
    """The name as the column can hold it on every database: no NUL characters, at most ORIGINAL_NAME_CHARS."""
    return original_name.replace("\x00", "")[:ORIGINAL_NAME_CHARS]


def _write_atomically(path: Path, data: bytes) -> None:
    """Write via a synced temp file in the same folder, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable (best effort; not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
