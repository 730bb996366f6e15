"""How predictions become a point cloud: one typed object, checked once.

`ExportOptions` is the `export` section of the service's settings, what the
export CLI builds from its flags, and what `export_glb` takes; its ranges and
choices are checked here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PointSource = Literal["pointmap", "depth"]
Downsample = Literal["confidence", "uniform", "voxel"]
POINT_SOURCES: tuple[str, ...] = ("pointmap", "depth")
DOWNSAMPLE_METHODS: tuple[str, ...] = ("confidence", "uniform", "voxel")
# The default point cap. At 12 bytes a point (quantized) 800,000 points are a 9.6 MB GLB: under
# 10 MB for any frame count (a few seconds of download on a phone, ~40 MB of WebView memory),
# and 20 frames of 518x392 (4.1 M candidate points) keep every 5th point, enough density for a
# phone screen (scripts/bench_export.py measures size and load time against full resolution).
POINT_BUDGET = 800_000


@dataclass(frozen=True)
class ExportOptions:
    conf_percentile: float = 3.0  # drop the least confident 3% of points; in [0, 100] (100 keeps the most confident)
    source: PointSource = "pointmap"  # world_points (pointmap) or depth unprojected with the cameras
    mask_black_bg: bool = False  # drop near-black pixels (rgb sum < 16)
    mask_white_bg: bool = False  # drop near-white pixels (all channels > 240)
    show_cameras: bool = False  # add a coloured marker per camera
    frame: int | None = None  # export only this frame (negatives count from the end); None: all
    max_points: int | None = POINT_BUDGET  # cap the point count for phones; None keeps all (full resolution)
    downsample: Downsample = "confidence"  # how max_points is applied: a random subset weighted by
    # confidence (keeps the cloud's structure, prefers confident points), "uniform", or "voxel" (3-5x slower)
    quantize: bool = True  # int16 positions (KHR_mesh_quantization): 12 bytes a point instead of 16
    center: bool = True  # the cloud's median at the origin, its size fit to a fixed viewer camera (radius 5)
    mask_sky: bool = False  # needs skyseg_model: the segmentation model is not shipped
    skyseg_model: str | None = None  # path of a local skyseg.onnx

    def __post_init__(self) -> None:
        if self.source not in POINT_SOURCES:
            raise ValueError(f"export.source must be one of {list(POINT_SOURCES)}, got {self.source!r}")
        if self.downsample not in DOWNSAMPLE_METHODS:
            raise ValueError(f"export.downsample must be one of {list(DOWNSAMPLE_METHODS)}, got {self.downsample!r}")
        percentile = self.conf_percentile
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 <= percentile <= 100:
            raise ValueError(f"export.conf_percentile must be in [0, 100], got {percentile!r}")
        if self.max_points is not None and (
            isinstance(self.max_points, bool) or not isinstance(self.max_points, int) or self.max_points < 1
        ):
            raise ValueError(f"export.max_points must be a positive integer or null, got {self.max_points!r}")
        if self.frame is not None and (isinstance(self.frame, bool) or not isinstance(self.frame, int)):
            raise ValueError(f"export.frame must be an integer or null, got {self.frame!r}")
