"""How far a decoded photo or video frame is reduced before it is kept.

The model's preprocessing (`serve_app.vggt.preprocess`) resizes every frame
with Pillow's bicubic filter to 518 pixels across (crop mode: the width; pad
mode: the long side), the other side rounded to a multiple of the 14-pixel
patch (`model_input_size`). `model_decode_size` gives the smallest size,
aspect kept, a frame can be reduced to first without changing that input
noticeably: every side at least `oversample` (2) times the input's.

A photo (`DecodeTarget`) is decoded at no less than `model_decode_size` (a
JPEG at the smallest DCT scale covering it), then resized once, straight to
`model_input_size`: the resize the preprocessing would make, so the
preprocessing finds the frame at its size and leaves it. A photo decoded at
full size (PNG, WebP, HEIC) thus gives the model the very input a full-size
frame gives; a JPEG differs only by its DCT scaling.

Why 2 (scripts/bench_decode.py, docs/BENCHMARKS.md): the bicubic kernel,
stretched over the downscale, still passes some detail up to about twice the
input's Nyquist frequency, which a decode at 2x keeps. Through a JPEG decoded
at 1/2 scale (2016 px, 3.9x the input) the model input of a 4032x3024 phone
photo is > 50 dB PSNR from the full-size decode's; at 1/4 scale (1008 px,
1.95x) ~49 dB, but a chart with detail at the pixel's own frequency falls to
~35 dB.

`DECODE_MAX_PIXELS` caps what a frame is decoded at whatever the model needs
(a very tall photo in crop mode) and is the bound video frames are kept at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serve_app.model_input import Mode, resized_size

# The model input's size (VGGTConfig.img_size and patch_size, the same in every preset;
# tests/frames/test_decode_bounds.py pins them). Kept here so decoding needs no torch.
MODEL_SIZE = 518
PATCH_SIZE = 14
DECODE_OVERSAMPLE = 2.0  # see the module docstring
# 2048 x 1536 (3.1 MP, 9 MiB as RGB): the most a frame is decoded at, whatever the model needs
DECODE_MAX_PIXELS = 2048 * 1536



def model_input_size(
    width: int, height: int, model_size: int = MODEL_SIZE, mode: Mode = "crop", patch_size: int = PATCH_SIZE
) -> tuple[int, int]:
    """(width, height) the model's preprocessing resizes a frame to, before its crop or pad
    (`serve_app.model_input.resized_size`, the arithmetic the preprocessing itself uses)."""
    return resized_size(width, height, mode, model_size, patch_size)


def model_decode_size(
    width: int,
    height: int,
    model_size: int = MODEL_SIZE,
    mode: Mode = "crop",
    *,
    patch_size: int = PATCH_SIZE,
    oversample: float = DECODE_OVERSAMPLE,
) -> tuple[int, int]:
    """The smallest (width, height), aspect kept, a frame may be reduced to for the model.

    Every side is at least `oversample` times the side `model_input_size`
    gives; a frame already that small keeps its size (never enlarged).
    """
    if width < 1 or height < 1:
        raise ValueError(f"a frame has at least one pixel a side, got {width}x{height}")
    if mode not in ("crop", "pad"):
        raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
    if oversample < 1:
        raise ValueError(f"oversample must be >= 1, got {oversample!r}")
    input_width, input_height = model_input_size(width, height, model_size, mode, patch_size)
    # the scale that gives the side which needs the most of its own resolution `oversample`-fold
    scale = max(oversample * input_width / width, oversample * input_height / height)
    if scale >= 1:
        return width, height
    reduced = min(width, _ceil(width * scale)), min(height, _ceil(height * scale))
    # The rounded aspect can tip the patch rounding of the input over a bin edge; a pixel or two
    # more or less on a side keeps the input's size what the full frame gives.
    for new_width, new_height in _near(*reduced):
        if (
            oversample * input_width <= new_width <= width
            and oversample * input_height <= new_height <= height
            and model_input_size(new_width, new_height, model_size, mode, patch_size) == (input_width, input_height)
        ):
            return new_width, new_height
    return reduced


@dataclass(frozen=True)
class DecodeTarget:
    """What a photo is decoded at and kept as, for a model of input `model_size` in `mode`."""

    model_size: int | None = MODEL_SIZE  # None: no model; frames are reduced to `max_pixels` alone
    mode: Mode = "crop"
    oversample: float = DECODE_OVERSAMPLE
    max_pixels: int | None = DECODE_MAX_PIXELS  # None or 0: no cap

    def decode_size(self, width: int, height: int) -> tuple[int, int]:
        """The least size an upright frame of `width` x `height` may be decoded at (a JPEG's DCT
        scale is the smallest that covers it): `model_decode_size`, capped at `max_pixels`."""
        wanted = (width, height)
        if self.model_size is not None:
            wanted = model_decode_size(width, height, self.model_size, self.mode, oversample=self.oversample)
        return fit_pixels(*wanted, self.max_pixels)

    def frame_size(self, width: int, height: int) -> tuple[int, int]:
        """The size the frame is kept at: the model input's own (`model_input_size`) when the frame
        is at least that large, so it is resized once, as the preprocessing would, and the
        preprocessing finds it at its size; a smaller frame keeps its size."""
        if self.model_size is None:
            return fit_pixels(width, height, self.max_pixels)
        input_width, input_height = model_input_size(width, height, self.model_size, self.mode)
        if width >= input_width and height >= input_height:
            return input_width, input_height
        return width, height


def fit_pixels(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, to at most `max_pixels` pixels.

    None or 0 keeps the size; a size already within the bound is kept as is.
    """
    if not max_pixels or width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    short, long = sorted((width, height))
    new_short = max(1, math.floor(short * scale))  # a 1-pixel-wide strip stays 1 pixel wide
    new_long = max(1, min(math.floor(long * scale), max_pixels // new_short))
    return (new_short, new_long) if width <= height else (new_long, new_short)


def fit_side(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, so the long side is at most `max_side`."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _near(width: int, height: int) -> list[tuple[int, int]]:
    """Sizes within 2 pixels a side of (width, height), the nearest first."""
    steps = (0, 1, -1, 2, -2)
    sizes = [(width + dw, height + dh) for dw in steps for dh in steps]
    return sorted(sizes, key=lambda size: abs(size[0] - width) + abs(size[1] - height))


def _ceil(value: float) -> int:
    """math.ceil, forgiving the float error of a product that is a whole number."""
    return max(1, math.ceil(value - 1e-9))
