"""The size the model's preprocessing resizes a frame to: plain arithmetic, no imports.

Both the preprocessing (`serve_app.vggt.preprocess`, which needs torch) and
the decoders (`serve_app.frames.bounds`, which must not) take it from here,
so the two can never disagree.
"""

from __future__ import annotations

from typing import Literal

Mode = Literal["crop", "pad"]


def resized_size(width: int, height: int, mode: Mode, target_size: int, patch_size: int) -> tuple[int, int]:
    """(new_width, new_height) before any crop or pad.

    Crop mode (and pad mode for a landscape or square frame): the width
    becomes `target_size`; pad mode for a portrait frame: the height does.
    The other side keeps the aspect, rounded to a multiple of `patch_size`
    with Python's round (half to even), and is at least one patch (an extreme
    aspect would otherwise round to 0).
    """
    if mode == "pad" and height > width:
        new_height = target_size
        new_width = round(width * (target_size / height) / patch_size) * patch_size
    else:
        new_width = target_size
        new_height = round(height * (target_size / width) / patch_size) * patch_size
    return max(new_width, patch_size), max(new_height, patch_size)
