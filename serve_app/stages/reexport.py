"""Export a stored result again with other options, from its stored predictions, without the model.

`reexport(store, base, user_id, hash, options)` loads the predictions kept
beside the user's GLB (`serve_app.storage.predictions`), runs `export_glb`
with `base` (the service's `export` settings) changed by `options` (the
names below, as the browser's adjust panel sends them), and stores the
result as a new GLB of the same user: a new hash, the original name with
" (re-export)", no predictions of its own. Errors: `HashNotFoundError` (no
such result of this user), `PredictionsExpiredError` (its predictions are
gone) and `BadOptionsError` (an unknown option, a wrong type, out of range),
each raised before anything is stored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from serve_app.export import ExportOptions, export_glb
from serve_app.export.options import POINT_SOURCES
from serve_app.export.thumbnail import first_frame_jpeg
from serve_app.storage import GlbStore
from serve_app.storage import predictions as stored_predictions
from tcp_proxy.errors import ServiceError

from .messages import Reconstruction

REEXPORT_SUFFIX = " (re-export)"
BOOLEAN_OPTIONS = ("show_cameras", "mask_black_bg", "mask_white_bg")
OPTION_NAMES = ("conf_percentile", "source", *BOOLEAN_OPTIONS, "frame", "max_points")


class PredictionsExpiredError(ServiceError):
    """The result is there, its stored predictions are not (expired, never stored, or removed)."""

    code = "ERROR_PREDICTIONS_EXPIRED"


class BadOptionsError(ServiceError):
    """Export options that are unknown, of the wrong type or out of range."""

    code = "ERROR_BAD_OPTIONS"


def export_options(base: ExportOptions, given: Mapping[str, object], frame_count: int | None) -> ExportOptions:
    """`base` with the options of `given` (OPTION_NAMES only) for predictions of `frame_count` frames
    (None: not known yet, any frame number passes); raises BadOptionsError naming the first it refuses."""
    if not isinstance(given, Mapping):
        raise BadOptionsError(f"export options must be an object, got {type(given).__name__}")
    unknown = sorted(str(name) for name in given if name not in OPTION_NAMES)
    if unknown:
        raise BadOptionsError(f"unknown export options: {', '.join(unknown)} (known: {', '.join(OPTION_NAMES)})")
    for name, value in given.items():
        problem = _refusal(name, value, frame_count)
        if problem:
            raise BadOptionsError(f"export option {name} {problem}, got {value!r}")
    try:
        return dataclasses.replace(base, **given)
    except (TypeError, ValueError) as error:
        raise BadOptionsError(str(error)) from None


def _refusal(name: str, value: object, frame_count: int | None) -> str | None:
    """Why `value` cannot be the option `name`, or None."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if name in BOOLEAN_OPTIONS:
        return None if isinstance(value, bool) else "must be true or false"
    if name == "conf_percentile":
        number = (is_int or isinstance(value, float)) and math.isfinite(value)
        return None if number and 0 <= value <= 100 else "must be a number from 0 to 100"
    if name == "source":
        return None if value in POINT_SOURCES else f"must be one of {', '.join(POINT_SOURCES)}"
    if name == "frame":
        if value is None or (is_int and (frame_count is None or -frame_count <= value < frame_count)):
            return None
        if frame_count is None:
            return "must be null or an integer"
        return f"must be null or a frame number from {-frame_count} to {frame_count - 1}"
    if name == "max_points":
        return None if value is None or (is_int and value >= 1) else "must be null or an integer of at least 1"
    return "is unknown"


def reexport(
    store: GlbStore, base: ExportOptions, user_id: int, hash_text: str, options: Mapping[str, object]
) -> Reconstruction:
    """A new GLB of the user's result `hash_text` exported with `options`, stored; see the module docstring."""
    source = export_options(base, options, None).source  # refused before anything is read
    found = stored_predictions.find(store.database, store.root, user_id, hash_text)
    if found is None:
        raise PredictionsExpiredError(f"the predictions of {hash_text} are no longer stored; upload the photos again")
    try:
        file, _size = store.root.open(found.key)
    except FileNotFoundError:
        raise PredictionsExpiredError(f"the predictions of {found.hashed_name} are missing") from None
    with file:
        arrays = stored_predictions.load(file, source)
    frame_count = len(arrays["extrinsic"])
    exported = export_glb(arrays, export_options(base, options, frame_count))
    saved = store.save(
        exported.glb,
        user_id,
        found.original_name + REEXPORT_SUFFIX,
        thumbnail=first_frame_jpeg(arrays.get("images")),
    )
    return Reconstruction(
        glb=exported.glb,
        hashed_name=saved.hashed_name,
        frame_count=frame_count,
        point_count=exported.point_count,
    )
