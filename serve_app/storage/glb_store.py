"""GLB files under the storage root (a folder or a bucket), each paired with its `glb_files` row.

`save` inserts the row first, which claims the hash (the column is unique),
then writes `<storage_root>/out/YYYY-MM-DD/<hash>.glb` (UTC date) whole (a
folder: through a synced temp file renamed into place; a bucket: one PUT,
see `serve_app.storage.blob_root`) and commits. If any step fails, the file
and the row are both gone; a save that finds its hash taken fails before it
touches any file. The row's `file_path` is stored relative to the storage
root. With a quota (`serve_app.storage.quota`) the save first makes room in
the same transaction (or refuses, `QuotaExceededError`); files of results it
evicted are deleted after the commit (`serve_app.storage.deletions`).
Lookups validate the hash first and never open a file outside the storage
root's `out/`. A save may bring a preview picture (`thumbnail`, JPEG bytes),
written beside the GLB as `<hash>.jpg`: optional, so a failure to write it
is logged and the save goes on; it is deleted with the GLB. So may the
predictions a later export needs (`predictions`, npz bytes from
`serve_app.storage.predictions.pack`), written beside it as `<hash>.npz`,
their size in the row's `predictions_size` and counted in the quota; a
failure to write them is logged too and leaves `predictions_size` null.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from sqlalchemy import select

from serve_app.storage.blob_root import BlobRoot, as_root
from serve_app.storage.database import Database
from serve_app.storage.deletions import finish_deletions, predictions_key, thumbnail_key
from serve_app.storage.glb_download import FileDownload
from serve_app.storage.hashes import new_hashed_name, normalize_hash
from serve_app.storage.models import GlbFile, utcnow
from serve_app.storage.paths import OUT_DIR, relative_glb_path
from serve_app.storage.quota import Quota
from tcp_proxy.backend import GlbInfo
from tcp_proxy.errors import FileMissingError, HashNotFoundError

log = logging.getLogger(__name__)

ORIGINAL_NAME_CHARS = GlbFile.__table__.c.original_name.type.length


@dataclass(frozen=True)
class StoredGlb:
    """A saved GLB: its share hash, absolute file path (None in an object store), size in bytes and key."""

    hashed_name: str
    file_path: Path | None
    file_size: int
    key: str  # relative to the storage root, as in the row


class GlbStore:
    """Saves and finds GLB files under one storage root."""

    def __init__(self, db: Database, storage_root: BlobRoot | str | os.PathLike[str], quota: Quota | None = None):
        """storage_root: a folder, an `s3://` URL (default endpoint) or a root from `open_root`;
        quota: the per-user limits saves keep to (None: unlimited)."""
        self._db = db
        self.root = as_root(storage_root)
        self.quota = quota

    @property
    def database(self) -> Database:
        return self._db

    def save(
        self,
        glb: bytes,
        user_id: int,
        original_name: str,
        is_public: bool = False,
        source_digest: str | None = None,
        thumbnail: bytes | None = None,
        predictions: bytes | None = None,
    ) -> StoredGlb:
        """Write the file and its row together; on any failure neither remains.

        source_digest: what the GLB was computed from (the result cache's key), if known;
        thumbnail: JPEG bytes of the preview picture stored beside the GLB, if any;
        predictions: npz bytes of the stored predictions (`serve_app.storage.predictions`), if any.
        """
        hashed_name = new_hashed_name()
        relative_path = relative_glb_path(utcnow().date(), hashed_name)
        row = GlbFile(
            hashed_name=hashed_name,
            original_name=_storable_name(original_name),
            file_path=relative_path,
            user_id=user_id,
            file_size=len(glb),
            is_public=is_public,
            source_digest=source_digest,
        )
        key_is_ours = False
        evicted: list[str] = []
        try:
            with self._db.session() as session:
                if self.quota is not None:  # the user's row stays locked until this transaction ends
                    evicted = self.quota.admit(session, self.root, user_id, len(glb) + len(predictions or b""))
                session.add(row)
                session.flush()  # a taken hash (or an unknown user) fails here, before any file is written
                key_is_ours = True
                self.root.write(relative_path, glb)
                if thumbnail:
                    self._write_thumbnail(relative_path, thumbnail)
                if predictions:
                    row.predictions_size = self._write_predictions(relative_path, predictions)
        except BaseException:
            if key_is_ours:
                self.root.delete(thumbnail_key(relative_path) or relative_path)
                self.root.delete(predictions_key(relative_path) or relative_path)
                self.root.delete(relative_path)
            raise
        if evicted:
            log.info("user id %s: older results evicted to stay within the quota (%d files)", user_id, len(evicted))
            finish_deletions(self._db, self.root, evicted)
        return StoredGlb(hashed_name, self.root.local_path(relative_path), len(glb), relative_path)

    def locate(self, hash_text: str) -> str:
        """The key of a typed hash's file; raises InvalidHashError, HashNotFoundError or FileMissingError."""
        key = self._served_key(hash_text)
        if not self.root.is_file(key):
            raise FileMissingError(f"the file of {PurePosixPath(key).stem} is missing")
        return key

    def locate_thumbnail(self, hash_text: str) -> str:
        """The key of a typed hash's preview picture; raises as `locate`, FileMissingError when it has none."""
        key = thumbnail_key(self._served_key(hash_text))
        if key is None or not self.root.is_file(key):
            raise FileMissingError(f"no preview picture for {normalize_hash(hash_text)}")
        return key

    def _write_thumbnail(self, glb_key: str, jpeg: bytes) -> None:
        """Store the preview picture beside the GLB; a failure is logged, never raised."""
        key = thumbnail_key(glb_key)
        try:
            self.root.write(key, jpeg)
        except Exception:
            log.warning("could not store the preview picture %s", self.root.describe(key), exc_info=True)

    def _write_predictions(self, glb_key: str, npz: bytes) -> int | None:
        """Store the predictions beside the GLB; their size, or None when the write failed (logged)."""
        key = predictions_key(glb_key)
        try:
            self.root.write(key, npz)
        except Exception:
            log.warning("could not store the predictions %s", self.root.describe(key), exc_info=True)
            return None
        return len(npz)

    def path_for(self, hash_text: str) -> Path:
        """The local file of a typed hash (same checks and errors as `locate`); a folder root only."""
        path = self.root.local_path(self.locate(hash_text))
        if path is None:
            raise ValueError(f"{self.root.location} is an object store: its files have no local path")
        return path

    def open(self, hash_text: str) -> FileDownload:
        """The GLB file of a typed hash, opened for streaming (same checks and errors as `locate`)."""
        return FileDownload(self.root, self.locate(hash_text))

    def read(self, hash_text: str) -> bytes:
        """The GLB bytes of a typed hash (same checks and errors as `locate`)."""
        key = self.locate(hash_text)
        try:
            file, _size = self.root.open(key)
        except FileNotFoundError:
            raise FileMissingError(f"the file of {PurePosixPath(key).stem} is missing") from None
        with file:
            return file.read()

    def _served_key(self, hash_text: str) -> str:
        """The key of a typed hash's row, if it names a GLB under `out/` (whether or not it is there)."""
        hashed_name = normalize_hash(hash_text)
        with self._db.session() as session:
            stored_path = session.scalar(select(GlbFile.file_path).where(GlbFile.hashed_name == hashed_name))
        if stored_path is None:
            raise HashNotFoundError(f"no GLB with hash {hashed_name}")
        key = self.root.key_of(stored_path)
        if key is None or PurePosixPath(key).parts[0] != OUT_DIR or PurePosixPath(key).suffix != ".glb":
            # only GLB files under <root>/out/ are ever served: never the database, never anything else
            log.warning("row of %s points outside <storage root>/out/*.glb: %r", hashed_name, stored_path)
            raise FileMissingError(f"the file of {hashed_name} is not a GLB under the storage root's out/")
        return key

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
            key = self.root.key_of(stored_path)
            if key is not None and self.root.is_file(key):
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
