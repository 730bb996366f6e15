"""Predictions to GLB bytes: point selection, camera markers, scene alignment.

The scene is expressed in the first camera's view: world coordinates go
through that camera's camera-to-world matrix, the OpenGL axis flip and a half
turn about y, so viewers open looking the way the first photo was taken. The
alignment is baked into the vertices (every node of the GLB is the identity),
which renders exactly like the same transform on a parent node.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cameras import camera_colors, frustum_mesh
from .glb import Geometry, write_glb
from .points import cap_points, frame_index, select_points
from .sky import load_segmenter, sky_confidence_scale
from .transforms import OPENGL_FROM_OPENCV, apply_transform, homogeneous, rotation_about

# shown when nothing survives the selection, so the file is never empty
PLACEHOLDER_POINT = np.array([[1.0, 0.0, 0.0]], np.float32)
PLACEHOLDER_COLOR = np.array([[255, 255, 255]], np.uint8)


@dataclass(frozen=True)
class GlbExport:
    glb: bytes
    point_count: int  # points written (after the cap; 1 for the placeholder)
    selected_count: int  # points that passed the selection, before the cap


def scene_scale(vertices: np.ndarray) -> float:
    """Diagonal of the 5th-95th percentile box of the points."""
    lower, upper = np.percentile(vertices, [5, 95], axis=0)
    return float(np.linalg.norm(upper - lower))


def alignment_transform(first_world_to_camera: np.ndarray) -> np.ndarray:
    """4x4 map from VGGT world coordinates to the exported scene's."""
    return np.linalg.inv(first_world_to_camera) @ OPENGL_FROM_OPENCV @ rotation_about("y", 180.0)


def build_geometries(
    vertices: np.ndarray,
    colors: np.ndarray,
    world_to_camera: np.ndarray,
    *,
    show_cameras: bool,
    marker_scale: float,
) -> list[Geometry]:
    """Aligned point cloud plus, optionally, one marker per camera."""
    align = alignment_transform(world_to_camera[0])
    geometries = [Geometry("points", apply_transform(align, vertices), colors)]
    if show_cameras and marker_scale > 0:  # zero-sized markers would be invisible slivers
        for index, color in enumerate(camera_colors(len(world_to_camera))):
            marker = frustum_mesh(np.linalg.inv(world_to_camera[index]), color, marker_scale)
            aligned = apply_transform(align, marker.vertices)
            geometries.append(Geometry(f"camera_{index:03d}", aligned, marker.colors, marker.faces))
    return geometries


def export_glb(
    predictions: dict,
    *,
    conf_percentile: float = 3.0,
    source: str = "pointmap",
    mask_black_bg: bool = False,
    mask_white_bg: bool = False,
    show_cameras: bool = False,
    frame: int | None = None,
    max_points: int | None = None,
    downsample: str = "uniform",
    mask_sky: bool = False,
    skyseg_model: str | None = None,
) -> GlbExport:
    """VGGT predictions (numpy, batch dim removed) to a GLB point cloud, with point counts.

    conf_percentile: drop this percentage of the least confident points (0 keeps all
        with confidence > 1e-5). source: "pointmap" (world_points) or "depth"
        (world_points_from_depth with depth_conf). mask_black_bg / mask_white_bg:
        drop near-black (rgb sum < 16) / near-white (all channels > 240) pixels.
    show_cameras: add a coloured marker per camera. frame: export this frame only.
    max_points: cap the point count ("uniform" seeded subset or "voxel" merging).
    mask_sky: drop sky pixels; needs `skyseg_model`, the path of a local skyseg.onnx.
    """
    world_to_camera = homogeneous(predictions["extrinsic"])
    index = frame_index(frame, len(world_to_camera))
    sky_scale = None
    if mask_sky:
        sky_scale = sky_confidence_scale(predictions["images"], load_segmenter(skyseg_model))
    vertices, colors = select_points(
        predictions,
        conf_percentile=conf_percentile,
        source=source,
        mask_black_bg=mask_black_bg,
        mask_white_bg=mask_white_bg,
        frame=index,
        conf_scale=sky_scale,
    )
    selected_count = len(vertices)
    if selected_count == 0:
        vertices, colors, marker_scale = PLACEHOLDER_POINT, PLACEHOLDER_COLOR, 1.0
    else:
        marker_scale = scene_scale(vertices)  # from every kept point, so capping keeps marker sizes
        vertices, colors = cap_points(vertices, colors, max_points, method=downsample)

    if index is not None:
        world_to_camera = world_to_camera[index : index + 1]
    geometries = build_geometries(
        vertices, colors, world_to_camera, show_cameras=show_cameras, marker_scale=marker_scale
    )
    return GlbExport(glb=write_glb(geometries), point_count=len(vertices), selected_count=selected_count)


def predictions_to_glb(predictions: dict, **options) -> bytes:
    """GLB bytes of `export_glb` (same options), for callers that need only the file."""
    return export_glb(predictions, **options).glb
