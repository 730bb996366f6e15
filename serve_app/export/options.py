"""How predictions become a point cloud: one typed object, checked once.

`ExportOptions` is the `export` section of the service's settings, what the
export CLI builds from its flags, and what `export_glb` takes. Its ranges and
choices are declared on the fields (`tcp_proxy.field_checks`) and checked
when it is built, here and in the settings' pydantic model alike.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Literal

from annotated_types import Interval

from tcp_proxy.field_checks import PositiveInt, check_fields

PointSource = Literal["pointmap", "depth"]
Downsample = Literal["confidence", "uniform", "voxel"]
POINT_SOURCES: tuple[str, ...] = typing.get_args(PointSource)
DOWNSAMPLE_METHODS: tuple[str, ...] = typing.get_args(Downsample)
# The default point cap. At 12 bytes a point (quantized) 800,000 points are a 9.6 MB GLB: under
# 10 MB for any frame count (a few seconds of download on a phone, ~40 MB of WebView memory),
# and 20 frames of 518x392 (4.1 M candidate points) keep every 5th point, enough density for a
# phone screen (scripts/bench_export.py measures size and load time against full resolution).
POINT_BUDGET = 800_000


@dataclass(frozen=True)
class ExportOptions:
    # drop the least confident 3% of points (100 keeps only the most confident)
    conf_percentile: Annotated[float, Interval(ge=0, le=100)] = 3.0
    source: PointSource = "pointmap"  # world_points (pointmap) or depth unprojected with the cameras
    mask_black_bg: bool = False  # drop near-black pixels (rgb sum < 16)
    mask_white_bg: bool = False  # drop near-white pixels (all channels > 240)
    show_cameras: bool = False  # add a coloured marker per camera
    frame: int | None = None  # export only this frame (negatives count from the end); None: all
    max_points: PositiveInt | None = POINT_BUDGET  # cap the point count for phones; None keeps all (full resolution)
    downsample: Downsample = "confidence"  # how max_points is applied: a random subset weighted by
    # confidence (keeps the cloud's structure, prefers confident points), "uniform", or "voxel" (3-5x slower)
    quantize: bool = True  # int16 positions (KHR_mesh_quantization): 12 bytes a point instead of 16
    center: bool = True  # the cloud's median at the origin, its size fit to a fixed viewer camera (radius 5)
    mask_sky: bool = False  # needs skyseg_model: the segmentation model is not shipped
    skyseg_model: str | None = None  # path of a local skyseg.onnx

    def __post_init__(self) -> None:
        check_fields(self, "export")
