"""How far a decoded photo or video frame is reduced before it is kept.

The model never sees more than 518 pixels across (`serve_app.vggt.preprocess`:
crop mode scales the width to 518, pad mode the long side), so a frame is
kept at no more than `DECODE_MAX_PIXELS` pixels, its aspect ratio unchanged.
The bound is on the pixel count, not the long side, so a tall portrait keeps
its width: in crop mode the width is what the preprocessing scales from.
"""

from __future__ import annotations

import math

# 2048 x 1536 (3.1 MP, 9 MiB as RGB): a 4:3 photo keeps 2048 px across, ~4x the
# model's 518; any aspect up to 2.9:1 keeps >= 2 x 518 on its short side. The
# model input then differs from the full-size path by < 0.25 grey levels on
# average (tests/frames/test_reduction.py).
DECODE_MAX_PIXELS = 2048 * 1536


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
