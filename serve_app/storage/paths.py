"""Where GLB files live under the storage root.

Rows store `file_path` relative to the storage root
(`out/YYYY-MM-DD/<hash>.glb`), so the root can move. Absolute paths written
by earlier deployments are accepted as long as they lie inside the root.
Every stored path is resolved (symlinks and `..` included) and must stay
inside the resolved root.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path, PurePosixPath

OUT_DIR = "out"


def relative_glb_path(day: date, hashed_name: str) -> str:
    """`out/YYYY-MM-DD/<hash>.glb`, the form stored in `glb_files.file_path`."""
    return str(PurePosixPath(OUT_DIR, day.isoformat(), f"{hashed_name}.glb"))


def resolve_inside(root: Path, stored_path: str) -> Path | None:
    """The absolute file of a stored path, or None when it would leave `root`."""
    resolved_root = root.resolve()
    try:
        candidate = Path(stored_path)
        if not candidate.is_absolute():
            candidate = resolved_root / candidate
        resolved = candidate.resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte; a symlink loop (RuntimeError before 3.13)
        return None
    if not resolved.is_relative_to(resolved_root) or resolved == resolved_root:
        return None
    return resolved
