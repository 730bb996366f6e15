"""Where GLB files are kept: a local folder or an S3-compatible bucket, behind one small interface.

Everything above it (the GLB store, downloads, the share pages, the
consistency check) names a file by its key, the path relative to the root
that `glb_files.file_path` holds (`out/YYYY-MM-DD/<hash>.glb`), so moving
the files between a folder and a bucket is a copy.

`open_root("/srv/vggt")` (or any path) is a `LocalRoot`: today's files,
written through a synced temp file renamed into place. `open_root("s3://bucket/prefix")`
is an `FsspecRoot` over s3fs: an object is written in one PUT (S3 never
shows a half-written object) and read in ranges. Credentials come from the
standard AWS environment variables and files, never from the config.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, Protocol

from serve_app.storage.paths import OUT_DIR, resolve_inside

if TYPE_CHECKING:
    from serve_app.config import StorageSettings

TEMP_SUFFIX = ".tmp"  # unfinished local writes: `.<hash>.glb.<random>.tmp`, found by the consistency check
READ_BLOCK_SIZE = 1024 * 1024  # bytes an object store fetches per request when streaming


@dataclass(frozen=True)
class StoredObject:
    """A file under `out/`: its key and modification time (seconds since the epoch)."""

    key: str
    modified: float


class BlobRoot(Protocol):
    """The storage root: files named by keys relative to it."""

    location: str  # the folder (resolved) or the URL, as shown to an operator

    def key_of(self, stored_path: str) -> str | None:
        """The normalized key of a `file_path` as stored, or None when it would leave the root."""

    def write(self, key: str, data: bytes) -> None:
        """Store `data` under `key` whole: a reader sees all of it or nothing."""

    def open(self, key: str) -> tuple[BinaryIO, int]:
        """The file opened for reading, and its size; FileNotFoundError when it is not there."""

    def is_file(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the file; one that is already gone is fine."""

    def list_out(self) -> list[StoredObject]:
        """Every file under `out/`."""

    def local_path(self, key: str) -> Path | None:
        """The file on this machine's filesystem, or None for an object store."""

    def describe(self, key: str) -> str:
        """The file's full name for messages: an absolute path or a URL."""

    def available(self) -> bool:
        """Whether the root is there at all (the folder, the bucket)."""


def open_root(location: str | os.PathLike[str], *, endpoint_url: str = "") -> BlobRoot:
    """The root at a folder path or an `s3://bucket/prefix` URL (`endpoint_url`: a non-AWS S3 service)."""
    text = os.fspath(location)
    if "://" in text:
        return FsspecRoot(text, endpoint_url=endpoint_url)
    return LocalRoot(text)


def settings_root(storage: StorageSettings) -> BlobRoot:
    """The root of the service's `storage` settings."""
    return open_root(storage.storage_root, endpoint_url=storage.s3_endpoint_url)


def as_root(root: BlobRoot | str | os.PathLike[str]) -> BlobRoot:
    """`root` itself, or the root at a path or URL."""
    return open_root(root) if isinstance(root, (str, os.PathLike)) else root


class LocalRoot:
    """A folder: atomic writes via temp file + rename; stored paths resolved (symlinks too) inside it."""

    def __init__(self, folder: str | os.PathLike[str]):
        self.path = Path(folder).resolve()  # fixed now: a later chdir must not move the root
        self.location = str(self.path)

    def key_of(self, stored_path: str) -> str | None:
        resolved = resolve_inside(self.path, stored_path)
        return None if resolved is None else resolved.relative_to(self.path).as_posix()

    def write(self, key: str, data: bytes) -> None:
        _write_atomically(self.path / key, data)

    def open(self, key: str) -> tuple[BinaryIO, int]:
        file = open(self.path / key, "rb")  # noqa: SIM115 - the caller closes it
        return file, os.fstat(file.fileno()).st_size

    def is_file(self, key: str) -> bool:
        return (self.path / key).is_file()

    def delete(self, key: str) -> None:
        (self.path / key).unlink(missing_ok=True)

    def list_out(self) -> list[StoredObject]:
        out_dir = self.path / OUT_DIR
        if not out_dir.is_dir():
            return []
        found = []
        for day_dir in out_dir.iterdir():
            if not day_dir.is_dir():
                continue
            for path in day_dir.iterdir():
                resolved = path.resolve()
                if not resolved.is_relative_to(self.path) or not resolved.is_file():
                    continue  # a link leading out of the root is not ours to list (or delete)
                try:
                    modified = resolved.stat().st_mtime
                except FileNotFoundError:  # vanished meanwhile
                    continue
                found.append(StoredObject(resolved.relative_to(self.path).as_posix(), modified))
        return found

    def local_path(self, key: str) -> Path | None:
        return self.path / key

    def describe(self, key: str) -> str:
        return str(self.path / key)

    def available(self) -> bool:
        return self.path.is_dir()


class FsspecRoot:
    """A bucket (and prefix) of an fsspec filesystem, in practice S3 through s3fs."""

    def __init__(self, url: str, *, endpoint_url: str = "", read_block_size: int = READ_BLOCK_SIZE):
        try:
            import fsspec  # the `s3` extra: only deployments with an object store need it
        except ImportError:
            raise ImportError(f"{url} needs fsspec and s3fs: pip install -e '.[s3]'") from None

        options: dict = {"use_listings_cache": False}  # other processes write too: never trust a cached listing
        if endpoint_url:
            options["endpoint_url"] = endpoint_url
        self.location = url.rstrip("/")
        self.fs, base = fsspec.core.url_to_fs(self.location, **options)
        self._base = base.rstrip("/")
        self._block_size = read_block_size

    def key_of(self, stored_path: str) -> str | None:
        if not stored_path or "\x00" in stored_path or stored_path.startswith("/"):
            return None  # absolute paths are a local folder's, never a key
        key = posixpath.normpath(stored_path)
        if key in (".", "..") or key.startswith("../"):
            return None
        return key

    def _full(self, key: str) -> str:
        return f"{self._base}/{key}"

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._full(key), data)

    def open(self, key: str) -> tuple[BinaryIO, int]:
        # readahead of one block: each request fetches at most a block, never the whole object
        file = self.fs.open(self._full(key), "rb", block_size=self._block_size, cache_type="readahead")
        return file, file.size

    def is_file(self, key: str) -> bool:
        return self.fs.isfile(self._full(key))

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._full(key))
        except FileNotFoundError:
            pass

    def list_out(self) -> list[StoredObject]:
        prefix = self._full(OUT_DIR)
        try:
            found = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            return []
        return [
            StoredObject(PurePosixPath(path).relative_to(self._base).as_posix(), _timestamp(info))
            for path, info in found.items()
            if info.get("type") == "file"
        ]

    def local_path(self, key: str) -> Path | None:
        return None

    def describe(self, key: str) -> str:
        return f"{self.location}/{key}"

    def available(self) -> bool:
        bucket = self._base.split("/", 1)[0]
        try:
            return self.fs.exists(bucket)
        except (OSError, ValueError):
            return False


def _timestamp(info: dict) -> float:
    """An object's modification time; infinitely new when the store gives none (so it is never taken for old)."""
    modified = info.get("LastModified") or info.get("mtime")
    if modified is None:
        return float("inf")
    return modified.timestamp() if hasattr(modified, "timestamp") else float(modified)


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
