"""Predictions to GLB bytes: point selection, camera markers, scene alignment.

The scene is expressed in the first camera's view: world coordinates go
through that camera's camera-to-world matrix, the OpenGL axis flip and a half
turn about y, so viewers open looking the way the first photo was taken. The
alignment is baked into the vertices. With `ExportOptions.center` a root node
then moves the cloud's median point to the origin and scales its robust size
to VIEW_SIZE (the phone app's viewer orbits the origin at a fixed radius of 5,
and VGGT's scale is arbitrary anyway); with `quantize` each geometry node holds
the dequantization of its int16 positions (`glb.write_glb`). Both are on by
default and off in `predictions_to_glb`, which writes what the reference
viewer writes (identity nodes, float32, every point).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cameras import camera_colors, frustum_mesh
from .glb import Geometry, write_glb
from .laps import Laps
from .options import ExportOptions
from .points import frame_index, select
from .ranks import median, percentile
from .transforms import OPENGL_FROM_OPENCV, apply_transform, homogeneous, rotation_about

VIEW_SIZE = 3.0  # robust scene diagonal after centring: fills a phone viewer's camera at radius 5 (fov 0.8)
# shown when nothing survives the selection, so the file is never empty
PLACEHOLDER_POINT = np.array([[1.0, 0.0, 0.0]], np.float32)
PLACEHOLDER_COLOR = np.array([[255, 255, 255]], np.uint8)


@dataclass(frozen=True)
class GlbExport:
    glb: bytes
    point_count: int  # points written (after the cap; 1 for the placeholder)
    selected_count: int  # points that passed the selection, before the cap


SCALE_SAMPLE = 1_000_000  # points enough to place the 5th and 95th percentiles


def even_sample(items: np.ndarray) -> np.ndarray:
    """Every step-th item, the smallest step that leaves at most SCALE_SAMPLE of them."""
    return items[:: max(1, -(-len(items) // SCALE_SAMPLE))]


def scene_scale(vertices: np.ndarray) -> float:
    """Diagonal of the 5th-95th percentile box of the points (of `even_sample` of them).

    Axis by axis (`ranks.percentile`): the same values as `np.percentile(sample, [5, 95], axis=0)`, faster.
    """
    sample = even_sample(vertices)
    box = np.empty((2, 3))
    for axis in range(3):
        column = np.ascontiguousarray(sample[:, axis])
        box[:, axis] = [percentile(column, np.float64(q)) for q in (5, 95)]  # a float64 q, as in a list of q
    return float(np.linalg.norm(box[1] - box[0]))


def median_point(vertices: np.ndarray) -> np.ndarray:
    """`np.median(vertices, axis=0)`, axis by axis (`ranks.median`: the same values, faster)."""
    return np.array([median(np.ascontiguousarray(vertices[:, axis])) for axis in range(3)], vertices.dtype)


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
    predictions: dict, options: ExportOptions = ExportOptions(), *, laps: Laps | None = None
) -> GlbExport:
    """VGGT predictions (numpy, batch dim removed) to a GLB point cloud, with point counts.

    What is kept and how is `options` (`ExportOptions`: confidence percentile,
    point source, background and sky masks, one frame, point cap, camera markers).
    laps: given, it gets the seconds of each step (select, scale, cap, align, quantize, write).
    """
    laps = laps if laps is not None else Laps()
    world_to_camera = homogeneous(predictions["extrinsic"])
    index = frame_index(options.frame, len(world_to_camera))
    sky_scale = None
    if options.mask_sky:
        from .sky import load_segmenter, sky_confidence_scale  # OpenCV and onnxruntime only when asked for

        sky_scale = sky_confidence_scale(predictions["images"], load_segmenter(options.skyseg_model))
    selection = select(predictions, options, conf_scale=sky_scale)
    laps.mark("select")
    selected_count = len(selection.kept)
    if selected_count == 0:
        vertices, colors, marker_scale = PLACEHOLDER_POINT, PLACEHOLDER_COLOR, 1.0
    else:
        # from every kept point (the same even subsample scene_scale takes), so capping keeps marker sizes
        marker_scale = scene_scale(selection.vertices(even_sample(selection.kept)))
        laps.mark("scale")
        vertices, colors = selection.capped(options.max_points, options.downsample)
        laps.mark("cap")

    if index is not None:
        world_to_camera = world_to_camera[index : index + 1]
    geometries = build_geometries(
        vertices, colors, world_to_camera, show_cameras=options.show_cameras, marker_scale=marker_scale
    )
    # the robust centre of the cloud (median of the written points) goes to the origin, and its robust
    # size (the 5-95 % box diagonal) becomes VIEW_SIZE: the app's camera, 5 units away, frames it
    offset, scale = None, 1.0
    if options.center:
        offset = -median_point(geometries[0].vertices)
        scale = VIEW_SIZE / marker_scale if marker_scale > 0 else 1.0
    laps.mark("align")
    glb = write_glb(geometries, quantize=options.quantize, offset=offset, scale=scale, laps=laps)
    return GlbExport(glb=glb, point_count=len(vertices), selected_count=selected_count)


def predictions_to_glb(
    predictions: dict,
    conf_percentile: float = 3.0,
    source: str = "pointmap",
    mask_black_bg: bool = False,
    mask_white_bg: bool = False,
    show_cameras: bool = False,
    frame: int | None = None,
) -> bytes:
    """GLB bytes as the reference viewer writes them: every selected point, float32, first camera at
    the origin (no point cap, no quantization, no centring; see `ExportOptions` for those)."""
    options = ExportOptions(
        conf_percentile=conf_percentile,
        source=source,  # type: ignore[arg-type]
        mask_black_bg=mask_black_bg,
        mask_white_bg=mask_white_bg,
        show_cameras=show_cameras,
        frame=frame,
        max_points=None,
        quantize=False,
        center=False,
    )
    return export_glb(predictions, options).glb
