"""Deleting stored results: the rows first, then the files, each file queued in between.

A deletion is two steps:

1. one transaction deletes the `glb_files` rows and, for each file that no
   remaining row references, queues its key in `glb_deletions`
   (`delete_rows`);
2. after the commit, each queued file is deleted from the storage root, then
   its queue entry (`finish_deletions`).

Why rows first: from the commit on, the share hash is simply unknown
(GET_GLB `ERROR_HASH_NOT_FOUND`, the share page a 404), never a link to a
missing file. A process stopped between the two steps (killed, crashed, the
bucket unreachable) leaves a queued file: the consistency check counts it as
awaiting deletion, not as an orphan, and the next sweep (expiry, the export
replicas' timer, `vggt-check-storage --repair`) deletes it. The reverse
order would leave rows whose file is gone (`ERROR_FILE_MISSING`) until a
repair.

A file referenced by several rows (the same `file_path`) goes with the last
of them; a queued file that a row references again is kept, its entry
dropped. Paths that lead outside the storage root are never deleted. A
GLB's preview picture (`<hash>.jpg` beside `<hash>.glb`, `thumbnail_key`)
is deleted with it, just before the GLB, and so are its stored predictions
(`<hash>.npz`, `predictions_key`). Predictions expiring before their GLB
are queued here alone (`serve_app.storage.predictions`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from serve_app.storage.blob_root import BlobRoot
from serve_app.storage.database import Database
from serve_app.storage.models import GlbDeletion, GlbFile

log = logging.getLogger(__name__)

THUMBNAIL_SUFFIX = ".jpg"
PREDICTIONS_SUFFIX = ".npz"


def thumbnail_key(glb_key: str) -> str | None:
    """The key of the preview picture stored beside a GLB (`out/<day>/<hash>.jpg`); None for other keys."""
    return glb_key[: -len(".glb")] + THUMBNAIL_SUFFIX if glb_key.endswith(".glb") else None


def predictions_key(glb_key: str) -> str | None:
    """The key of the predictions stored beside a GLB (`out/<day>/<hash>.npz`); None for other keys."""
    return glb_key[: -len(".glb")] + PREDICTIONS_SUFFIX if glb_key.endswith(".glb") else None


def delete_rows(session: Session, root: BlobRoot, rows: Iterable[tuple[int, str]]) -> list[str]:
    """Delete the `glb_files` rows `(id, file_path)` in `session`'s transaction; the keys of the files
    queued for deletion (those no remaining row references). A row another process deleted first
    queues nothing here: that process queued its file."""
    unreferenced: dict[str, str] = {}  # stored path -> key
    for row_id, stored_path in rows:
        if session.execute(delete(GlbFile).where(GlbFile.id == row_id)).rowcount != 1:
            continue
        key = root.key_of(stored_path)
        if key is None:
            log.warning("row %d points outside the storage root (%r): its file is not deleted", row_id, stored_path)
        else:
            unreferenced[stored_path] = key
    queued = []
    now = time.time()
    for stored_path, key in unreferenced.items():
        if _is_referenced(session, stored_path, key) or key in queued:
            continue
        if session.get(GlbDeletion, key) is None:
            session.add(GlbDeletion(file_key=key, queued_at=now))
        queued.append(key)
    session.flush()
    return queued


def finish_deletions(
    db: Database, root: BlobRoot, keys: Sequence[str] | None = None, *, limit: int | None = 500
) -> list[str]:
    """Delete queued files from the root, then their entries: `keys`, or the `limit` oldest queued.
    The keys whose files were deleted; a failure is logged and leaves its entry for the next sweep."""
    if keys is None:
        keys = pending_deletions(db, limit=limit)
    deleted = []
    for key in keys:
        try:
            with db.session() as session:
                if _is_referenced(session, key, key):  # stored again meanwhile: not ours to delete
                    session.execute(delete(GlbDeletion).where(GlbDeletion.file_key == key))
                    continue
            for companion in (thumbnail_key(key), predictions_key(key)):
                if companion is not None:
                    root.delete(companion)  # first: a failure leaves the GLB queued, so it is tried again
            root.delete(key)
            with db.session() as session:
                session.execute(delete(GlbDeletion).where(GlbDeletion.file_key == key))
        except Exception:
            log.warning("could not delete %s; it stays queued", root.describe(key), exc_info=True)
            continue
        deleted.append(key)
    if deleted:
        log.info("deleted %d stored files", len(deleted))
    return deleted


def pending_deletions(db: Database, *, limit: int | None = None) -> list[str]:
    """Keys of the files queued for deletion, oldest first (at most `limit`)."""
    query = select(GlbDeletion.file_key).order_by(GlbDeletion.queued_at, GlbDeletion.file_key)
    if limit is not None:
        query = query.limit(limit)
    with db.session() as session:
        return list(session.scalars(query))


def _is_referenced(session: Session, stored_path: str, key: str) -> bool:
    """Whether a row still names the file (by the path as stored, or by its key)."""
    found = session.scalar(select(GlbFile.id).where(GlbFile.file_path.in_({stored_path, key})).limit(1))
    return found is not None
