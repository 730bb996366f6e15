"""How sharp a frame is: variance of the Laplacian of a small grey image.

A blurred frame (hand shake, focus hunting) has weak edges, so its Laplacian
varies little. Scores only compare frames of one video with each other.
The grey image of a decoded YUV frame is its luma plane, read in place, so
scoring a frame never converts it to RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

SCORE_SIDE = 480  # long side, in pixels, of the grey image that is scored

# 8-bit pixel formats whose first plane is the luma, one byte per pixel
_LUMA_FIRST = frozenset(
    {
        "yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p",
        "yuv440p", "yuvj440p", "yuv411p", "yuv410p", "nv12", "nv21", "nv16",
        "gray",
    }
)


def laplacian_variance(grey: np.ndarray, side: int = SCORE_SIDE) -> float:
    """Sharpness of a 2-D grey image, shrunk to `side` px on its long side first.

    Shrinking skips rows and columns down to twice the target size, then
    averages 2x2 areas: most of an area filter's noise suppression at a
    fraction of its cost on full-HD and 4K frames.
    """
    if grey.ndim != 2:
        raise ValueError("expected a 2-D grey image")
    height, width = grey.shape
    scale = side / max(height, width)
    if scale < 1.0:
        step = max(1, int(1.0 / scale) // 2)
        grey = grey[::step, ::step]
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    _, deviation = cv2.meanStdDev(cv2.Laplacian(grey, cv2.CV_32F))
    return float(deviation[0, 0]) ** 2


def frame_sharpness(frame, side: int = SCORE_SIDE) -> float:
    """Sharpness of a decoded `av.VideoFrame`."""
    return laplacian_variance(_grey(frame, side), side)


def _grey(frame, side: int) -> np.ndarray:
    if frame.format.name in _LUMA_FIRST:
        plane = frame.planes[0]
        rows = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        return rows[: frame.height, : frame.width]
    # other layouts (10-bit, RGB, ...): let swscale shrink and convert
    scale = min(1.0, side / max(frame.width, frame.height))
    small = frame.reformat(
        width=max(1, round(frame.width * scale)),
        height=max(1, round(frame.height * scale)),
        format="gray",
    )
    return small.to_ndarray()
