"""Finding and repairing disagreement between `glb_files` rows and files.

A row whose file is gone (or points outside the storage root) is a broken
share link; a file without a row (or a temp file left by a crash) is
unreachable. `check_storage` lists both; `repair_storage` deletes both.
A file queued for deletion (`glb_deletions`: its row is deleted, the file
not yet, `serve_app.storage.deletions`) is neither: it is listed as
awaiting deletion, storage counts as consistent, and a repair (or any
expiry sweep) finishes it. A GLB's preview picture (`<hash>.jpg` beside it)
is accounted for while its GLB is (a row's file, or queued); without it, it
is an orphan like a GLB without a row. So are stored predictions
(`<hash>.npz`) unless their row still counts them (`predictions_size` set)
or their GLB is queued for deletion. Files younger than `min_age_s` are skipped, so a save in progress (file
written, row not yet committed) is never taken for an orphan. The root may
be a folder or a bucket (`serve_app.storage.blob_root`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from sqlalchemy import delete, select

from serve_app.storage.blob_root import TEMP_SUFFIX, BlobRoot, as_root
from serve_app.storage.database import Database
from serve_app.storage.deletions import (
    PREDICTIONS_SUFFIX,
    THUMBNAIL_SUFFIX,
    finish_deletions,
    pending_deletions,
    predictions_key,
    thumbnail_key,
)
from serve_app.storage.models import GlbFile
from serve_app.storage.paths import OUT_DIR

log = logging.getLogger(__name__)

DEFAULT_MIN_AGE_S = 600.0


@dataclass(frozen=True)
class StorageReport:
    rows_without_files: list[str]  # hashed names
    files_without_rows: list[str]  # keys relative to the storage root (`root.describe(key)` for messages)
    rows_checked: int = 0  # rows in glb_files when checked
    root: BlobRoot | None = field(default=None, compare=False)  # where the files were looked for
    awaiting_deletion: list[str] = field(default_factory=list)  # keys queued in glb_deletions: not a problem

    @property
    def consistent(self) -> bool:
        return not self.rows_without_files and not self.files_without_rows


def check_storage(
    db: Database, storage_root: BlobRoot | str | os.PathLike[str], *, min_age_s: float = DEFAULT_MIN_AGE_S
) -> StorageReport:
    """Rows whose file is missing, and GLB or temp files under `out/<day>/` with no row (those queued for
    deletion apart)."""
    root = as_root(storage_root)
    queued = pending_deletions(db)
    with db.session() as session:
        rows = session.execute(select(GlbFile.hashed_name, GlbFile.file_path, GlbFile.predictions_size)).all()
    referenced: set[str] = set(queued)  # a queued file is accounted for, and so are its picture and predictions
    referenced.update({predictions_key(key) for key in queued} - {None})
    rows_without_files = []
    for hashed_name, stored_path, predictions_size in rows:
        key = root.key_of(stored_path)
        if key is None or not root.is_file(key):
            rows_without_files.append(hashed_name)
        else:
            referenced.add(key)
            if predictions_size is not None:
                referenced.add(predictions_key(key))
    referenced.update({thumbnail_key(key) for key in referenced} - {None})
    newest_allowed = time.time() - min_age_s
    files_without_rows = [
        found.key
        for found in root.list_out()
        if _is_stored_file(found.key) and found.key not in referenced and found.modified <= newest_allowed
    ]
    awaiting = sorted(key for key in queued if root.is_file(key))
    return StorageReport(sorted(rows_without_files), sorted(files_without_rows), len(rows), root, awaiting)


def repair_storage(db: Database, report: StorageReport) -> None:
    """Delete the rows without files and the files without rows of `report`, and finish the queued deletions."""
    if report.rows_without_files:
        with db.session() as session:
            session.execute(delete(GlbFile).where(GlbFile.hashed_name.in_(report.rows_without_files)))
        log.info("deleted %d rows without files", len(report.rows_without_files))
    for key in report.files_without_rows:
        report.root.delete(key)
        log.info("deleted file without row: %s", report.root.describe(key))
    if report.root is not None:
        finish_deletions(db, report.root, limit=None)


def _is_stored_file(key: str) -> bool:
    """`out/<day>/*.glb`, a preview picture, predictions or a leftover temp file there: what saves write."""
    parts = PurePosixPath(key).parts
    suffix = PurePosixPath(key).suffix
    saved = suffix in (".glb", THUMBNAIL_SUFFIX, PREDICTIONS_SUFFIX) or key.endswith(TEMP_SUFFIX)
    return len(parts) == 3 and parts[0] == OUT_DIR and saved

