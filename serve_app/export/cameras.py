"""Camera markers: a solid square pyramid per camera, coloured along gist_rainbow.

Each marker is a four-sided cone with its tip at the camera centre, opening
along the viewing direction, its size a fixed share of the scene's extent.
It is solid (four sides and a base, each triangle in both windings so that
one-sided materials show it from any side): no sliver triangles that vanish
at phone size.
"""

from __future__ import annotations

import numpy as np

from .glb import Geometry
from .transforms import OPENGL_FROM_OPENCV, apply_transform, rotation_about

# gist_rainbow as (position, (r, g, b)) stops, linearly interpolated between them
GIST_RAINBOW_STOPS = (
    (0.000, (1.00, 0.00, 0.16)),
    (0.030, (1.00, 0.00, 0.00)),
    (0.215, (1.00, 1.00, 0.00)),
    (0.400, (0.00, 1.00, 0.00)),
    (0.586, (0.00, 1.00, 1.00)),
    (0.770, (0.00, 0.00, 1.00)),
    (0.954, (1.00, 0.00, 1.00)),
    (1.000, (1.00, 0.00, 0.75)),
)
COLORMAP_SIZE = 256  # entries of the sampled table, as in the usual plotting libraries

MARKER_RADIUS = 0.05  # cone base radius, in units of the scene diagonal
MARKER_DEPTH = 0.1  # cone height, in units of the scene diagonal


def _colormap_table() -> np.ndarray:
    """[256, 3] floats: gist_rainbow sampled at evenly spaced positions.

    Interpolates in table-index units, (sample - left) / (right - left) of the
    way between stops, so values agree to the last bit with the common
    plotting libraries' tables (this matters once truncated to uint8).
    """
    last = COLORMAP_SIZE - 1
    stops = np.array([position for position, _ in GIST_RAINBOW_STOPS]) * last
    rgb = np.array([color for _, color in GIST_RAINBOW_STOPS])
    samples = last * np.linspace(0.0, 1.0, COLORMAP_SIZE)
    right = np.searchsorted(stops, samples[1:-1])
    fraction = (samples[1:-1] - stops[right - 1]) / (stops[right] - stops[right - 1])
    inner = fraction[:, None] * (rgb[right] - rgb[right - 1]) + rgb[right - 1]
    return np.clip(np.vstack([rgb[:1], inner, rgb[-1:]]), 0.0, 1.0)


_TABLE = _colormap_table()


def gist_rainbow(x: float) -> tuple[float, float, float]:
    """RGB in [0, 1] for x in [0, 1], read from the 256-entry table (no interpolation)."""
    index = min(max(int(x * COLORMAP_SIZE), 0), COLORMAP_SIZE - 1)
    r, g, b = _TABLE[index]
    return float(r), float(g), float(b)


def camera_colors(count: int) -> list[tuple[int, int, int]]:
    """uint8 RGB per camera: camera i gets gist_rainbow(i / count), truncated."""
    return [tuple(int(255 * channel) for channel in gist_rainbow(i / count)) for i in range(count)]


def _cone(radius: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Four-sided cone: base corners at z=0 (counter-clockwise), tip at z=height.

    Returns its five vertices (tip last) and its four side triangles.
    """
    angles = np.deg2rad([0.0, 90.0, 180.0, 270.0])
    corners = np.stack([radius * np.cos(angles), radius * np.sin(angles), np.zeros(4)], axis=1)
    vertices = np.vstack([corners, [[0.0, 0.0, height]]])
    tip = 4
    sides = np.array([(i, (i + 1) % 4, tip) for i in range(4)])
    return vertices, sides


def _solid_faces(sides: np.ndarray) -> np.ndarray:
    """The cone's sides and its base (two triangles), each in both windings."""
    base = np.array([(0, 2, 1), (0, 3, 2)])
    faces = np.vstack([sides, base])
    return np.vstack([faces, faces[:, ::-1]])


def frustum_mesh(camera_to_world: np.ndarray, color: tuple[int, int, int], scene_scale: float) -> Geometry:
    """Marker for one camera, sized from the scene diagonal, in world coordinates."""
    height = scene_scale * MARKER_DEPTH
    vertices, sides = _cone(scene_scale * MARKER_RADIUS, height)
    # square base aligned with the image axes, tip moved to the camera centre
    cone_to_camera = rotation_about("z", 45.0)
    cone_to_camera[2, 3] = -height
    world = apply_transform(camera_to_world @ OPENGL_FROM_OPENCV @ cone_to_camera, vertices)
    colors = np.tile(np.array(color, np.uint8), (len(world), 1))
    return Geometry("camera", world, colors, _solid_faces(sides))
