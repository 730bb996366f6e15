"""Camera markers: a thin square-pyramid outline per camera, coloured along gist_rainbow.

Each marker is a four-sided cone with its tip at the camera centre, opening
along the viewing direction, drawn as slivers between the cone and two
slightly shrunk/turned copies of it so that it reads as a wireframe.
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
SHRUNK_COPY = 0.95  # scale of the first outline copy
TURNED_COPY_DEGREES = 2.0  # turn about the cone axis of the second outline copy


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


def _outline_faces(sides: np.ndarray, vertex_count: int) -> np.ndarray:
    """Sliver triangles joining each cone side to its two copies, both windings."""
    faces = []
    for a, b, tip in sides:
        for copy in (1, 2):
            offset = copy * vertex_count
            faces += [(a, b, b + offset), (a, a + offset, tip), (tip + offset, b, tip)]
    faces = np.array(faces)
    return np.vstack([faces, faces[:, ::-1]])


def frustum_mesh(camera_to_world: np.ndarray, color: tuple[int, int, int], scene_scale: float) -> Geometry:
    """Marker for one camera, sized from the scene diagonal, in world coordinates."""
    height = scene_scale * MARKER_DEPTH
    vertices, sides = _cone(scene_scale * MARKER_RADIUS, height)
    turned = apply_transform(rotation_about("z", TURNED_COPY_DEGREES), vertices)
    all_vertices = np.vstack([vertices, SHRUNK_COPY * vertices, turned])

    # square base aligned with the image axes, tip moved to the camera centre
    cone_to_camera = rotation_about("z", 45.0)
    cone_to_camera[2, 3] = -height
    world = apply_transform(camera_to_world @ OPENGL_FROM_OPENCV @ cone_to_camera, all_vertices)
    faces = _outline_faces(sides, len(vertices))
    corners = world[faces]  # [M,3,3]; the turned copy of the tip is the tip: drop what collapses
    distinct = [~np.all(corners[:, a] == corners[:, b], axis=1) for a, b in ((0, 1), (1, 2), (0, 2))]
    colors = np.tile(np.array(color, np.uint8), (len(world), 1))
    return Geometry("camera", world, colors, faces[distinct[0] & distinct[1] & distinct[2]])
