"""Finding and repairing disagreement between `glb_files` rows and files.

A row whose file is gone (or points outside the storage root) is a broken
share link; a file without a row (or a temp file left by a crash) is
unreachable. `check_storage` lists both; `repair_storage` deletes both.
Files younger than `min_age_s` are skipped, so a save in progress (file
written, row not yet committed) is never taken for an orphan.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select

from serve_app.storage.database import Database
from serve_app.storage.glb_store import TEMP_SUFFIX
from serve_app.storage.models import GlbFile
from serve_app.storage.paths import OUT_DIR, resolve_inside

log = logging.getLogger(__name__)

DEFAULT_MIN_AGE_S = 600.0


@dataclass(frozen=True)
class StorageReport:
    rows_without_files: list[str]  # hashed names
    files_without_rows: list[Path]  # absolute paths
    rows_checked: int = 0  # rows in glb_files when checked

    @property
    def consistent(self) -> bool:
        return not self.rows_without_files and not self.files_without_rows


def check_storage(
    db: Database, storage_root: str | os.PathLike[str], *, min_age_s: float = DEFAULT_MIN_AGE_S
) -> StorageReport:
    """Rows whose file is missing, and GLB or temp files under `out/` with no row."""
    root = Path(storage_root).resolve()
    with db.session() as session:
        rows = session.execute(select(GlbFile.hashed_name, GlbFile.file_path)).all()
    referenced: set[Path] = set()
    rows_without_files = []
    for hashed_name, stored_path in rows:
        path = resolve_inside(root, stored_path)
        if path is None or not path.is_file():
            rows_without_files.append(hashed_name)
        else:
            referenced.add(path)
    newest_allowed = time.time() - min_age_s
    files_without_rows = [
        path
        for path in _stored_files(root)
        if path not in referenced and _modified_at(path) <= newest_allowed
    ]
    return StorageReport(sorted(rows_without_files), sorted(files_without_rows), len(rows))


def repair_storage(db: Database, report: StorageReport) -> None:
    """Delete the rows without files and the files without rows of `report`."""
    if report.rows_without_files:
        with db.session() as session:
            session.execute(delete(GlbFile).where(GlbFile.hashed_name.in_(report.rows_without_files)))
        log.info("deleted %d rows without files", len(report.rows_without_files))
    for path in report.files_without_rows:
        path.unlink(missing_ok=True)
        log.info("deleted file without row: %s", path)


def _modified_at(path: Path) -> float:
    """The file's mtime; infinitely new if it vanished meanwhile (so it is skipped)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _stored_files(root: Path) -> list[Path]:
    """`out/<day>/*.glb` and leftover temp files, resolved."""
    out_dir = root / OUT_DIR
    if not out_dir.is_dir():
        return []
    found = []
    for day_dir in out_dir.iterdir():
        if not day_dir.is_dir():
            continue
        for path in day_dir.iterdir():
            if path.is_file() and (path.suffix == ".glb" or path.name.endswith(TEMP_SUFFIX)):
                found.append(path.resolve())
    return found
