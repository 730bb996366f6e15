"""Predictions kept beside a GLB, so the result can be exported again with other options.

`pack` turns the model's outputs into the bytes of `out/<day>/<hash>.npz`
(the key `serve_app.storage.deletions.predictions_key` gives; written by
`GlbStore.save`, its size in `glb_files.predictions_size`), `load` reads
back what `serve_app.export.export_glb` needs for one point source. Only
what an export reads is kept, each array as exact as the export needs it:
an export from the loaded arrays writes the same points and colours as one
from the originals, for every option.

* points and confidences (`world_points`, `world_points_conf`, `depth`,
  `depth_conf`, the cameras) stay float32: positions land on a finer grid
  than float16's, and the confidence percentile and the point cap's
  weights read exact values. An array whose values float16 holds exactly
  is stored as float16 (they come back as float32).
* `images` become `colors`, uint8 [S,3,H,W]: the export only ever reads
  `(images * 255)` truncated to uint8, and the pixel centre `(c + 0.5) / 255`
  they come back as truncates to the same byte.
* the depth source's points are not stored: they are the depth unprojected
  with the cameras (`serve_app.vggt.geometry`), recomputed by `load` to the
  same floats.

The file is a standard npz (a zip of .npy members; `np.load` reads it),
every member stored as is, not deflated. The file is a cache kept only
`storage.predictions_ttl_s`, and deflating it was not worth its CPU: the
low bytes of float32 outputs are noise (the maps of 20 frames deflate by a
few percent for seconds of CPU, `scripts/bench_reexport.py`), and the
colours are a ninth of the bytes, so deflating even colours that halve (at
zlib level 1) saved ~6 % of a 20-frame file for ~0.1 CPU s, a fifth of the
export replica's CPU per stored export, and that replica's CPU per request
bounds how many requests a GPU can be fed.

Predictions live `storage.predictions_ttl_s`; `expire` then deletes them
the way deletions go (row first, the file queued in `glb_deletions` in the
same transaction, then the file), keeping the GLB.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from sqlalchemy import select, update

from serve_app.storage.blob_root import BlobRoot
from serve_app.storage.database import Database
from serve_app.storage.deletions import finish_deletions, predictions_key
from serve_app.storage.hashes import normalize_hash
from serve_app.storage.models import GlbDeletion, GlbFile, utcnow
from tcp_proxy.errors import HashNotFoundError, InvalidHashError

FORMAT_VERSION = 1
HALF_PROBE = 4096  # values looked at first when checking whether float16 holds an array exactly
# what each point source reads besides `extrinsic` and `colors` (pointmap falls back to depth without world_points)
SOURCE_KEYS = {
    "pointmap": ("world_points", "world_points_conf"),
    "depth": ("depth", "depth_conf", "intrinsic"),
}
FLOAT_KEYS = ("world_points", "world_points_conf", "depth", "depth_conf", "extrinsic", "intrinsic")
STORED_KEYS = (*FLOAT_KEYS, "images")  # the prediction arrays `pack` keeps: the inference stage passes them on


def pack(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The npz bytes of the export's share of `arrays` (VGGT outputs, batch dim removed)."""
    kept: dict[str, np.ndarray] = {"format": np.array(FORMAT_VERSION, np.int32)}
    for key in FLOAT_KEYS:
        if key in arrays:
            kept[key] = _smallest_exact(np.asarray(arrays[key]))
    if "depth" in kept and kept["depth"].ndim == 4:
        kept["depth"] = kept["depth"][..., 0]  # [S,H,W,1] -> [S,H,W]
    if "world_points_from_depth" in arrays and not {"depth", "intrinsic"} <= kept.keys():
        kept["world_points_from_depth"] = _smallest_exact(np.asarray(arrays["world_points_from_depth"]))
    if "images" in arrays:
        kept["colors"] = colors_of(np.asarray(arrays["images"]))
    return _npz(kept)


def colors_of(images: np.ndarray) -> np.ndarray:
    """The bytes the export reads from images [S,3,H,W] in [0, 1]: `(images * 255)` truncated to uint8."""
    return (images * 255).astype(np.uint8)


def images_of(colors: np.ndarray) -> np.ndarray:
    """float32 images whose `(images * 255)` truncates to `colors` again: each byte's centre."""
    images = colors.astype(np.float32)
    images += np.float32(0.5)
    images /= np.float32(255)
    return images


def load(data: io.IOBase | bytes, source: str) -> dict[str, np.ndarray]:
    """The predictions `export_glb` reads for `source` ("pointmap" or "depth"), from npz bytes or a file."""
    with np.load(io.BytesIO(data) if isinstance(data, bytes) else data, allow_pickle=False) as npz:
        present = set(npz.files)
        wanted = ["extrinsic", "colors", *SOURCE_KEYS[source]]
        if source == "pointmap" and "world_points" not in present:
            wanted += SOURCE_KEYS["depth"]
        if "world_points_from_depth" in present:
            wanted.append("world_points_from_depth")
        arrays = {key: npz[key] for key in dict.fromkeys(wanted) if key in present}
    out = {key: value.astype(np.float32, copy=False) for key, value in arrays.items() if key != "colors"}
    if "colors" in arrays:
        out["images"] = images_of(arrays["colors"])
    if "world_points_from_depth" not in out and {"depth", "intrinsic", "extrinsic"} <= out.keys():
        from serve_app.vggt.geometry import unproject_depth_map_to_point_map  # torch: only for the depth source

        out["world_points_from_depth"] = unproject_depth_map_to_point_map(
            out["depth"], out["extrinsic"], out["intrinsic"]
        )
    return out


def _smallest_exact(array: np.ndarray) -> np.ndarray:
    """float16 when it holds every value exactly, else float32 (most arrays fail on their first values)."""
    array = array.astype(np.float32, copy=False)
    for values in (array.reshape(-1)[:HALF_PROBE], array):
        half = values.astype(np.float16)
        if not np.array_equal(half.astype(np.float32), values, equal_nan=True):
            return array
    return half


def _npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An npz archive of `arrays`, every member stored (not deflated)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


@dataclass(frozen=True)
class StoredPredictions:
    """A user's result whose predictions are stored: its hash, name and the npz's key."""

    hashed_name: str
    original_name: str
    key: str  # of the npz, relative to the storage root


def find(db: Database, root: BlobRoot, user_id: int, hash_text: str) -> StoredPredictions | None:
    """The stored predictions of the user's result `hash_text`; None when it has none (any more).
    HashNotFoundError when the user has no such result (malformed hashes and other users' included)."""
    try:
        hashed_name = normalize_hash(hash_text)
    except InvalidHashError:
        raise HashNotFoundError(f"no result with hash {hash_text[:80]!r}") from None
    with db.session() as session:
        row = session.execute(
            select(GlbFile.file_path, GlbFile.original_name, GlbFile.predictions_size).where(
                GlbFile.hashed_name == hashed_name, GlbFile.user_id == user_id
            )
        ).one_or_none()
    if row is None:
        raise HashNotFoundError(f"no result with hash {hashed_name}")
    glb_key = root.key_of(row.file_path)
    key = predictions_key(glb_key) if glb_key is not None else None
    if row.predictions_size is None or key is None:
        return None
    return StoredPredictions(hashed_name, row.original_name or "", key)


def expire(db: Database, root: BlobRoot, ttl_s: int, *, limit: int) -> list[str]:
    """Delete the predictions of at most `limit` results stored more than `ttl_s` ago (oldest first), keeping
    their GLBs: `predictions_size` set null with the file queued in one transaction, then the files. The keys
    of the files deleted."""
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    query = (
        select(GlbFile.id, GlbFile.file_path)
        .where(GlbFile.predictions_size.is_not(None), GlbFile.created_at < cutoff)
        .order_by(GlbFile.created_at, GlbFile.id)
        .limit(limit)
    )
    queued: list[str] = []
    now = time.time()
    with db.session() as session:
        for row_id, stored_path in session.execute(query).all():
            session.execute(update(GlbFile).where(GlbFile.id == row_id).values(predictions_size=None))
            glb_key = root.key_of(stored_path)
            key = predictions_key(glb_key) if glb_key is not None else None
            if key is None or key in queued:
                continue
            if session.get(GlbDeletion, key) is None:
                session.add(GlbDeletion(file_key=key, queued_at=now))
            queued.append(key)
    return finish_deletions(db, root, queued)
