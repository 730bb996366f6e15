"""The picture a share link shows in chats and link previews: a small JPEG of the first input frame.

Made at export time from the model input (`Predictions.arrays["images"]`,
[S, 3, H, W] in [0, 1]) and stored beside the GLB (`<hash>.jpg`); a result
without one simply has no preview picture.
"""

from __future__ import annotations

import io

import numpy as np

THUMBNAIL_WIDTH = 400  # pixels
THUMBNAIL_QUALITY = 80  # JPEG quality


def first_frame_jpeg(
    images: np.ndarray | None, width: int = THUMBNAIL_WIDTH, quality: int = THUMBNAIL_QUALITY
) -> bytes | None:
    """JPEG bytes of frame 0 of `images` ([S, 3, H, W] or [S, H, W, 3] floats in [0, 1]) scaled to `width`;
    None when there is no frame."""
    from PIL import Image

    if images is None or np.ndim(images) != 4 or len(images) == 0:
        return None
    frame = np.asarray(images[0], dtype=np.float32)
    if frame.shape[0] == 3 and frame.shape[-1] != 3:
        frame = frame.transpose(1, 2, 0)  # channels first -> last
    if frame.shape[-1] != 3:
        return None
    rgb = np.clip(np.nan_to_num(frame) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    height, old_width = rgb.shape[:2]
    if height == 0 or old_width == 0:
        return None
    picture = Image.fromarray(rgb, "RGB")
    picture = picture.resize((width, max(1, round(height * width / old_width))), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
