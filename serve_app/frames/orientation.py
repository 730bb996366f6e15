"""Turning decoded video frames upright with the stream's display matrix.

Phones store video in sensor orientation and record how to show it as a
display matrix (the MP4/MOV `tkhd` matrix, which FFmpeg attaches to every
decoded frame as side data). The matrix maps a stored pixel (x, y) to
display position (a*x + c*y, b*x + d*y) plus an offset, with
[a, b, u, c, d, v, ...] in 16.16 fixed point. Only right-angle rotations and
mirrors are applied; any other angle leaves the frame as stored.
"""

from __future__ import annotations

import numpy as np

_ONE = 1 << 16  # 1.0 in the matrix's 16.16 fixed point


def display_matrix(frame) -> tuple[int, ...] | None:
    """The 3x3 display matrix of an `av.VideoFrame` (row-major), or None."""
    for side_data in frame.side_data:
        if getattr(side_data.type, "name", "") == "DISPLAYMATRIX":
            values = np.frombuffer(bytes(side_data), dtype=np.int32)
            if values.size == 9:
                return tuple(int(v) for v in values)
    return None


def apply_display_matrix(image: np.ndarray, matrix: tuple[int, ...] | None) -> np.ndarray:
    """`image` ([H, W, C]) as it is meant to be displayed."""
    if matrix is None:
        return image
    a, b, c, d = (round(matrix[i] / _ONE) for i in (0, 1, 3, 4))
    if a == 0 and d == 0 and abs(b) == 1 and abs(c) == 1:
        out = image.transpose(1, 0, *range(2, image.ndim))
        horizontal, vertical = c < 0, b < 0
    elif b == 0 and c == 0 and abs(a) == 1 and abs(d) == 1:
        out = image
        horizontal, vertical = a < 0, d < 0
    else:
        return image
    if horizontal:
        out = out[:, ::-1]
    if vertical:
        out = out[::-1]
    return out
