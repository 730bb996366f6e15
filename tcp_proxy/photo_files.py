"""Which files of a folder are photos: the formats the service decodes, as the clients pick them."""

from __future__ import annotations

import os
from pathlib import Path

# JPEG, PNG, WebP and HEIC/HEIF (iPhone): what serve_app.frames.photos decodes
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")


def folder_photos(folder: str | os.PathLike) -> list[Path]:
    """The photos directly in `folder` (PHOTO_SUFFIXES, any case), in name order."""
    entries = (path for path in Path(folder).iterdir() if path.suffix.lower() in PHOTO_SUFFIXES)
    return sorted((path for path in entries if path.is_file()), key=lambda path: path.name)
