"""Uploaded photos (JPEG, PNG, WebP, HEIC/HEIF bytes) to upright RGB uint8 arrays.

* Sizes in the headers are checked before any pixel is decoded, so a small
  file that would expand to a huge image is refused cheaply: each photo
  against `max_pixels`, all photos of an upload together against
  `max_request_pixels`.
* Each photo is reduced, as it is decoded, to what the model needs
  (`bounds.DecodeTarget`): a JPEG is decoded at the smallest 1/2, 1/4 or
  1/8 DCT scale that keeps twice the model input, then every photo is
  resized once, bicubic, to the model input's size, as the model's
  preprocessing would (which then leaves it as it is).
* Photos are decoded on `workers` threads (`parallel.py`), in order of the
  upload, and only as many at once as hold no more decoded pixels together
  than one photo of `max_pixels` may: an upload holds at most one maximal
  photo's pixels (or `workers` smaller ones) at a time, plus reduced ones.
* EXIF orientation is applied (phones store portrait shots sideways).
* Transparency is composited on white, as the model's preprocessing does
  with RGBA input; 16-bit grey is scaled down to 8 bits.
* Only the formats phones send are opened; anything else is a BadImageError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from PIL import ExifTags, Image
from pillow_heif import register_heif_opener

from serve_app.frames.bounds import DecodeTarget
from serve_app.frames.buffer_file import BufferFile
from serve_app.frames.parallel import map_in_order
from tcp_proxy.errors import (
    BadImageError,
    NoFramesError,
    TooManyImagesError,
    TooManyPixelsError,
)
from tcp_proxy.photo_files import PHOTO_SUFFIXES

register_heif_opener()  # lets Pillow open HEIC/HEIF (iPhone photos); once per process, on import
FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")  # JPEG includes multi-picture (MPO) files, HEIF the .heic files
SUFFIXES = PHOTO_SUFFIXES  # file names of those formats (what the clients take from a folder)
DEFAULT_MAX_PIXELS = 50_000_000
DEFAULT_MAX_REQUEST_PIXELS = 1_000_000_000
MODEL_TARGET = DecodeTarget()  # VGGT's 518-pixel input in crop mode, decoded at twice that

Blob = bytes | bytearray | memoryview | np.ndarray  # the photo file's bytes
Progress = Callable[[int, int], None]  # (photos decoded, photos)
T = TypeVar("T")

# EXIF orientation -> the transpose that turns the stored pixels upright
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TURNED = (5, 6, 7, 8)  # orientations whose upright width is the stored height
_EXIF_AFTER_PIXELS = ("PNG",)  # formats whose EXIF may follow the pixel data
_DCT_SCALED = ("JPEG", "MPO")  # formats `Image.draft` decodes at 1/2, 1/4 or 1/8 scale
_WIDE_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_RESAMPLED = ("L", "LA", "RGB", "RGBA")  # modes resized as they are (LA, RGBA with premultiplied alpha)


def decode_images(
    blobs: Sequence[Blob],
    max_images: int = 20,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    max_request_pixels: int = DEFAULT_MAX_REQUEST_PIXELS,
    target: DecodeTarget | None = MODEL_TARGET,
    workers: int = 0,
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Decode every photo of an upload, in order, each reduced to `target` (None: full size).

    `workers` photos are decoded at once (0: one per CPU). `progress`, when
    given, is called with (photos decoded, photos) after each photo.

    Raises NoFramesError for no photo, TooManyImagesError for more than
    `max_images`, BadImageError (naming the photo) for one that cannot be
    decoded or has more than `max_pixels` pixels, TooManyPixelsError when
    the photos' headers add up to more than `max_request_pixels` pixels.
    The first bad photo stops the decoding of those not yet started.
    """
    if len(blobs) == 0:
        raise NoFramesError("no image was sent")
    if len(blobs) > max_images:
        raise TooManyImagesError(f"{len(blobs)} images sent, at most {max_images} are accepted")
    headers = [
        _numbered(number, len(blobs), _header, blob, max_pixels, target) for number, blob in enumerate(blobs, 1)
    ]
    total = sum(width * height for (width, height), _ in headers)
    if total > max_request_pixels:
        raise TooManyPixelsError(
            f"the {len(blobs)} images have {total} pixels in all, more than the limit of {max_request_pixels}"
        )

    def decode_one(index: int) -> np.ndarray:
        return _numbered(index + 1, len(blobs), decode_image, blobs[index], max_pixels, target)

    # photos decoded at once hold no more pixels together than one photo of `max_pixels` may
    decoded = [pixels for _, pixels in headers]
    return map_in_order(decode_one, len(blobs), workers, progress, weights=decoded, budget=max_pixels)


def decode_image(
    blob: Blob, max_pixels: int = DEFAULT_MAX_PIXELS, target: DecodeTarget | None = MODEL_TARGET
) -> np.ndarray:
    """One photo as an upright RGB uint8 array [H, W, 3], reduced to `target` (None: full size)."""
    with _open(blob, max_pixels) as image:
        return _decode(image, target)


def _numbered(number: int, count: int, step: Callable[..., T], *args: Any) -> T:
    """`step(*args)`, its BadImageError naming photo `number` of `count`."""
    try:
        return step(*args)
    except BadImageError as exc:
        raise BadImageError(f"image {number} of {count}: {exc.message}") from exc


def _header(blob: Blob, max_pixels: int, target: DecodeTarget | None) -> tuple[tuple[int, int], int]:
    """((width, height), the pixels it is decoded at) from the photo's header, checked like `_open` does."""
    with _open(blob, max_pixels) as image:
        width, height = image.size
        if target is None or image.format not in _DCT_SCALED:
            return image.size, width * height
        least_width, least_height = _as_stored(target.decode_size, image.size, _orientation(image))
        fits = min(width // least_width, height // least_height)
        scale = next(scale for scale in (8, 4, 2, 1) if fits >= scale)  # the scale `Image.draft` picks
        return image.size, math.ceil(width / scale) * math.ceil(height / scale)


def _open(blob: Blob, max_pixels: int) -> Image.Image:
    """The photo opened lazily: format and header size checked, no pixel decoded."""
    if len(blob) == 0:
        raise BadImageError("the image is empty (0 bytes)")
    try:
        image = Image.open(BufferFile(blob), formats=FORMATS)  # reads the caller's buffer, no copy
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"the image is too large ({exc})") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means a bad upload
        raise BadImageError(
            f"not a decodable image (accepted: {', '.join(FORMATS)})"
        ) from exc
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise BadImageError(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        image.close()
        raise BadImageError(
            f"the image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}"
        )
    return image


def _decode(image: Image.Image, target: DecodeTarget | None) -> np.ndarray:
    """Decode an opened photo, reduce it to `target`, turn it upright, as RGB."""
    stored = image.size
    orientation = None if image.format in _EXIF_AFTER_PIXELS else _orientation(image)
    if orientation is not None and target is not None:
        least = _as_stored(target.decode_size, stored, orientation)
        if least != stored:
            image.draft(None, least)  # JPEG: decode at the smallest 1/2^k scale still >= least; others: no-op
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"the image is too large ({exc})") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad upload
        raise BadImageError(f"the {image.format} data is damaged or truncated ({exc})") from exc
    if orientation is None:
        orientation = _orientation(image)
    kept = stored if target is None else _as_stored(target.frame_size, stored, orientation)
    reduced = _reduce(_resamplable(image), kept)
    if orientation in _UPRIGHT:
        reduced = reduced.transpose(_UPRIGHT[orientation])
    return _to_rgb(reduced)


def _as_stored(
    upright_size: Callable[[int, int], tuple[int, int]], stored: tuple[int, int], orientation: int
) -> tuple[int, int]:
    """`upright_size` (a size for the upright photo) of a photo stored at `stored`, as stored."""
    if orientation in _TURNED:
        upright_width, upright_height = upright_size(stored[1], stored[0])
        return upright_height, upright_width
    return upright_size(*stored)


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 = upright); a broken EXIF block counts as upright."""
    try:
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    except Exception:  # noqa: BLE001 - malformed EXIF must not reject a good photo
        return 1


def _resamplable(image: Image.Image) -> Image.Image:
    """The image in a mode Pillow resizes with its full filter (L, LA, RGB, RGBA)."""
    if image.mode in _RESAMPLED:
        return image
    if image.mode in _WIDE_GREY:
        grey = np.asarray(image)
        grey = (grey.astype(np.uint32) >> 8) if grey.max(initial=0) > 255 else grey
        return Image.fromarray(grey.astype(np.uint8), mode="L")
    if image.mode == "F":
        return Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8), mode="L")
    if image.mode == "PA" or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")


def _reduce(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """`image` resized to `size` (bicubic, as the model's preprocessing); the same image if it fits."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.BICUBIC)  # no reducing_gap: the very pixels the preprocessing makes


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()
