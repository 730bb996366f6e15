"""Small predictions whose kept points can be worked out by hand.

Two frames of 2x2 pixels. Point k (k = 0..7, frame-major) sits at
(k + 1, 10, 100) in the point map and at (-(k + 1), 20, 200) in the depth
unprojection; its point-map confidence is k + 1 and its depth confidence
8 - k. Colours are exact byte values; pixel 0 of frame 0 is black
(sum 15 < 16), pixel 1 is white (241 each). Camera 0 sits at the world origin
looking down +z; camera 1 is moved by (0, 0, -5).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import trimesh

S, H, W = 2, 2, 2

COLORS = np.array(
    [
        [5, 5, 5],  # sum 15: black background
        [241, 241, 241],  # white background
        [6, 5, 5],  # sum 16: kept by the black mask
        [241, 241, 240],  # one channel at 240: kept by the white mask
        [10, 20, 30],
        [40, 50, 60],
        [70, 80, 90],
        [100, 110, 120],
    ],
    np.uint8,
)


def make_predictions() -> dict[str, np.ndarray]:
    k = np.arange(S * H * W, dtype=np.float32)
    world_points = np.stack([k + 1, np.full_like(k, 10), np.full_like(k, 100)], axis=1)
    depth_points = np.stack([-(k + 1), np.full_like(k, 20), np.full_like(k, 200)], axis=1)
    # exact bytes after `* 255` and truncation
    images = ((COLORS.astype(np.float32) + 0.5) / 255).reshape(S, H, W, 3).transpose(0, 3, 1, 2)
    extrinsic = np.tile(np.eye(4, dtype=np.float32)[:3], (S, 1, 1))
    extrinsic[1, 2, 3] = 5.0  # world-to-camera translation: camera 1 centre at z = -5
    return {
        "world_points": world_points.reshape(S, H, W, 3),
        "world_points_conf": (k + 1).reshape(S, H, W),
        "world_points_from_depth": depth_points.reshape(S, H, W, 3),
        "depth_conf": (8 - k).reshape(S, H, W),
        "images": np.ascontiguousarray(images, dtype=np.float32),
        "extrinsic": extrinsic,
        "intrinsic": np.tile(np.eye(3, dtype=np.float32), (S, 1, 1)),
        "depth": np.ones((S, H, W, 1), np.float32),
        "pose_enc": np.zeros((S, 9), np.float32),
    }


def first_camera_view(points: np.ndarray) -> np.ndarray:
    """Where world points land in the export when camera 0 is the identity: (-x, -y, z)."""
    return np.asarray(points, np.float64) * np.array([-1.0, -1.0, 1.0])


def load_glb(glb: bytes) -> trimesh.Scene:
    return trimesh.load(io.BytesIO(glb), file_type="glb")


def placed(scene: trimesh.Scene, node: str):
    """The geometry of `node`, checked to sit at an identity node (the export bakes transforms)."""
    matrix, geometry_name = scene.graph[node]
    np.testing.assert_array_equal(matrix, np.eye(4))
    return scene.geometry[geometry_name]


def marker_colors(mesh: trimesh.Trimesh) -> np.ndarray:
    """RGBA per vertex (trimesh keeps COLOR_0 beside the material when there is one)."""
    if hasattr(mesh.visual, "vertex_attributes") and "color" in mesh.visual.vertex_attributes:
        return np.asarray(mesh.visual.vertex_attributes["color"])
    return np.asarray(mesh.visual.vertex_colors)


def cameras_of(glb: bytes) -> list[trimesh.Trimesh]:
    """Camera markers, in camera order."""
    scene = load_glb(glb)
    return [placed(scene, node) for node in sorted(scene.graph.nodes_geometry) if node.startswith("camera_")]


def cloud_of(glb: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Points (scene coordinates) and RGB colours of the exported cloud."""
    scene = load_glb(glb)
    clouds = [g for g in scene.dump() if isinstance(g, trimesh.PointCloud)]
    assert len(clouds) == 1
    return np.asarray(clouds[0].vertices), np.asarray(clouds[0].colors)[:, :3]


@pytest.fixture
def predictions() -> dict[str, np.ndarray]:
    return make_predictions()


@pytest.fixture
def helpers():
    """The module-level helpers, for tests (importlib mode has no conftest imports)."""

    class Helpers:
        colors = COLORS
        make = staticmethod(make_predictions)
        first_camera_view = staticmethod(first_camera_view)
        load_glb = staticmethod(load_glb)
        cloud_of = staticmethod(cloud_of)
        cameras_of = staticmethod(cameras_of)
        marker_colors = staticmethod(marker_colors)

    return Helpers
