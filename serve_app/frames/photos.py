"""Uploaded photos (JPEG, PNG, WebP, HEIC/HEIF bytes) to upright RGB uint8 arrays.

* The size in the header is checked before any pixel is decoded, so a small
  file that would expand to a huge image is refused cheaply.
* EXIF orientation is applied (phones store portrait shots sideways).
* Transparency is composited on white, as the model's preprocessing does
  with RGBA input; 16-bit grey is scaled down to 8 bits.
* Only the formats phones send are opened; anything else is a BadImageError.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps
from pillow_heif import register_heif_opener

from tcp_proxy.errors import BadImageError, NoFramesError, TooManyImagesError

register_heif_opener()  # lets Pillow open HEIC/HEIF (iPhone photos); once per process, on import
FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")  # JPEG includes multi-picture (MPO) files, HEIF the .heic files
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")  # file names of those formats
DEFAULT_MAX_PIXELS = 50_000_000

Blob = bytes | bytearray | memoryview


def decode_images(
    blobs: Sequence[Blob],
    max_images: int = 20,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[np.ndarray]:
    """Decode every photo of an upload, in order.

    Raises NoFramesError for no photo, TooManyImagesError for more than
    `max_images`, BadImageError (naming the photo) for one that cannot be
    decoded or has more than `max_pixels` pixels.
    """
    if len(blobs) == 0:
        raise NoFramesError("no image was sent")
    if len(blobs) > max_images:
        raise TooManyImagesError(f"{len(blobs)} images sent, at most {max_images} are accepted")
    images = []
    for number, blob in enumerate(blobs, start=1):
        try:
            images.append(decode_image(blob, max_pixels=max_pixels))
        except BadImageError as exc:
            raise BadImageError(f"image {number} of {len(blobs)}: {exc.message}") from exc
    return images


def decode_image(blob: Blob, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """One photo as an upright RGB uint8 array [H, W, 3]."""
    if len(blob) == 0:
        raise BadImageError("the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(blob), formats=FORMATS)
    except Image.DecompressionBombError as exc:
        raise BadImageError(f"the image is too large ({exc})") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser failure means a bad upload
        raise BadImageError(
            f"not a decodable image (accepted: {', '.join(FORMATS)})"
        ) from exc
    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise BadImageError(f"the image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise BadImageError(
                f"the image is {width}x{height} = {width * height} pixels, "
                f"more than the limit of {max_pixels}"
            )
        try:
            image.load()
        except Image.DecompressionBombError as exc:
            raise BadImageError(f"the image is too large ({exc})") from exc
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad upload
            raise BadImageError(f"the {image.format} data is damaged or truncated ({exc})") from exc
        upright = _upright(image)
        return _to_rgb(upright)


def _upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as is."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - malformed EXIF must not reject a good photo
        return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = np.asarray(image)
        grey = (grey.astype(np.uint32) >> 8) if grey.max(initial=0) > 255 else grey
        image = Image.fromarray(grey.astype(np.uint8), mode="L")
    if image.mode == "F":
        grey = np.clip(np.asarray(image), 0, 255)
        image = Image.fromarray(grey.astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()
