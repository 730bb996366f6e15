"""What a phone gets: GLB size, bytes per point, export time and viewer load time, default vs full resolution.

    scripts/bench_export.py                       # 20 and 64 frames of 518x518
    scripts/bench_export.py --frames 20 --repeat 3 --no-viewer
    scripts/bench_export.py --frames 64 --budgets 400000 600000 1200000   # density against size and load time

The predictions are a wavy surface seen by frames that each overlap their
neighbour (what a phone sweep gives), with random confidences; only the
export runs (no model). For each frame count, in one run:

* full: every point, float32 positions, first camera at the origin (what the
  service wrote before the point budget; `predictions_to_glb` still does);
* default: the service's `ExportOptions()` (point budget, confidence-weighted
  thinning, int16 positions, centred and fit to the phone viewer's camera);
* ratios default / full, and the load time of each GLB in the phone app's
  viewer logic (scripts/phone_viewer/viewer.html: Babylon.js in headless
  Chromium with SwiftShader), when Chromium and .venv/viewer-test exist.

Also our GLB writer against trimesh's exporter on the same points (--writer-baseline-frames).
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from devkit.phone_viewer import PhoneViewer
from serve_app.export import ExportOptions, export_glb
from serve_app.export.glb import Geometry, write_glb
from serve_app.vggt.config import VGGTConfig

SIDE = VGGTConfig.img_size  # VGGT's input resolution


def synthetic_predictions(frames: int, side: int = SIDE, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    grid = np.linspace(0.0, 1.0, side, dtype=np.float32)
    u = grid[None, None, :] + 0.5 * np.arange(frames, dtype=np.float32)[:, None, None]  # frames overlap by half
    v = np.broadcast_to(grid[None, :, None], (frames, side, side))
    u = np.broadcast_to(u, (frames, side, side))
    points = np.stack([u, v, 0.2 * np.sin(4 * u) * np.cos(3 * v)], axis=-1)
    points += rng.normal(0.0, 0.002, points.shape).astype(np.float32)
    images = np.stack([(u / u.max()), v, 0.5 + 0.5 * np.sin(8 * u)], axis=1).astype(np.float32)
    extrinsic = np.tile(np.eye(4, dtype=np.float32)[:3], (frames, 1, 1))
    extrinsic[:, 0, 3] = -0.5 * np.arange(frames)
    return {
        "world_points": points.astype(np.float32),
        "world_points_conf": rng.uniform(1.0, 5.0, (frames, side, side)).astype(np.float32),
        "images": images,
        "extrinsic": extrinsic,
    }


def timed_export(predictions: dict, repeat: int, options: ExportOptions):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = export_glb(predictions, options)
        best = min(best, time.perf_counter() - start)
    return best, result


def writer_against_trimesh(predictions: dict, repeat: int) -> None:
    """Our GLB writer against trimesh's exporter on the same points, in this run."""
    import trimesh

    vertices = predictions["world_points"].reshape(-1, 3)
    colors = (predictions["images"].transpose(0, 2, 3, 1).reshape(-1, 3) * 255).astype(np.uint8)

    def ours() -> bytes:
        return write_glb([Geometry("points", vertices, colors)])

    def theirs() -> bytes:
        return trimesh.Scene(trimesh.PointCloud(vertices, colors=colors)).export(file_type="glb")

    timings = {}
    for name, write in (("ours", ours), ("trimesh", theirs)):
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            data = write()
            best = min(best, time.perf_counter() - start)
        timings[name] = (best, len(data))
    (ours_s, ours_size), (trimesh_s, trimesh_size) = timings["ours"], timings["trimesh"]
    print(
        f"     GLB writer on {len(vertices):,} points: ours {ours_s:.2f} s ({ours_size / 1e6:.1f} MB), "
        f"trimesh {trimesh_s:.2f} s ({trimesh_size / 1e6:.1f} MB), ours/trimesh time x{ours_s / trimesh_s:.2f}"
    )


CASES = {
    "full": ExportOptions(max_points=None, quantize=False, center=False),
    "default": ExportOptions(),
}


def run(args: argparse.Namespace) -> None:
    """Print the table: each case of each frame count of `args`, with the ratios default / full."""
    viewer = None if args.no_viewer else PhoneViewer()
    if viewer is not None and not viewer.available:
        print("(no viewer load times: Chromium or .venv/viewer-test/node_modules/babylonjs missing)")
        viewer = None

    print("| frames | case | points | bytes/point | GLB MB | export s | viewer load ms | first frame ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for frames in args.frames:
        predictions = synthetic_predictions(frames)
        rows = {}
        cases = {**CASES, **{f"cap {n:,}": ExportOptions(max_points=n) for n in args.budgets}}
        for name, options in cases.items():
            options = dataclasses.replace(options, show_cameras=args.show_cameras)
            seconds, result = timed_export(predictions, args.repeat, options)
            label = f"{frames}_{name}".replace(" ", "_").replace(",", "")
            times = viewer.load_ms(result.glb, label) if viewer is not None else None
            load, frame = times if times is not None else (None, None)
            rows[name] = (seconds, len(result.glb), result.point_count, load)
            print(
                f"| {frames} | {name} | {result.point_count:,} | {len(result.glb) / result.point_count:.1f} | "
                f"{len(result.glb) / 1e6:.1f} | {seconds:.2f} | {'-' if load is None else f'{load:.0f}'} | "
                f"{'-' if frame is None else f'{frame:.0f}'} |"
            )
        (full_s, full_size, full_points, full_load), (s, size, points, load) = rows["full"], rows["default"]
        loads = f"x{load / full_load:.2f}" if load and full_load else "-"
        print(
            f"|  | default / full | x{points / full_points:.3f} | | x{size / full_size:.3f} | "
            f"x{s / full_s:.2f} | {loads} | |"
        )
        if frames == args.writer_baseline_frames:
            writer_against_trimesh(predictions, args.repeat)
        del predictions
