"""4x4 rigid transforms used by the export."""

from __future__ import annotations

import numpy as np

# flips y and z: OpenCV camera axes (x right, y down, z forward) <-> OpenGL (y up, z back)
OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])

_AXES = {"x": 0, "y": 1, "z": 2}


def rotation_about(axis: str, degrees: float) -> np.ndarray:
    """4x4 right-handed rotation by `degrees` about a coordinate axis."""
    i = _AXES[axis]
    j, k = (i + 1) % 3, (i + 2) % 3
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    matrix = np.eye(4)
    matrix[j, j], matrix[j, k] = c, -s
    matrix[k, j], matrix[k, k] = s, c
    return matrix


def homogeneous(extrinsics: np.ndarray) -> np.ndarray:
    """[S,3,4] world-to-camera matrices as [S,4,4]."""
    extrinsics = np.asarray(extrinsics, dtype=np.float64)
    square = np.zeros((len(extrinsics), 4, 4))
    square[:, :3, :4] = extrinsics
    square[:, 3, 3] = 1.0
    return square


def apply_transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Points [N,3] mapped by a 4x4 affine matrix, in the points' float precision.

    Column by column: for millions of points this is several times faster
    than a matrix product with an [N,3] operand.
    """
    points = np.asarray(points)
    dtype = points.dtype if points.dtype in (np.float32, np.float64) else np.float64
    m = matrix.astype(dtype)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    out = np.empty((len(points), 3), dtype)
    for row in range(3):
        out[:, row] = x * m[row, 0] + y * m[row, 1] + z * m[row, 2] + m[row, 3]
    return out
