#!/usr/bin/env python
"""Export time and GLB size for synthetic predictions at 518x518, capped and uncapped.

    bench_export.py                       # 20 and 100 frames, cap 1,000,000 points
    bench_export.py --frames 20 --max-points 500000 --repeat 3

The predictions are a wavy surface seen by frames that each overlap their
neighbour (what a phone sweep gives), with random confidences; only the
export runs (no model). Prints one line per case and the capped/uncapped ratios.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

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


def timed_export(predictions: dict, repeat: int, **options):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = export_glb(predictions, ExportOptions(**options))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--max-points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    parser.add_argument("--show-cameras", action="store_true")
    parser.add_argument(
        "--writer-baseline-frames", type=int, default=20,
        help="also time trimesh's GLB exporter on the points of this many frames (0: skip)",
    )
    args = parser.parse_args()

    for frames in args.frames:
        predictions = synthetic_predictions(frames)
        base_time, base = timed_export(predictions, args.repeat, show_cameras=args.show_cameras)
        print(
            f"{frames:4d} frames {SIDE}x{SIDE} uncapped      : {base_time:6.2f} s  "
            f"{len(base.glb) / 1e6:8.1f} MB  {base.point_count:>11,} points"
        )
        for method in ("uniform", "voxel"):
            seconds, capped = timed_export(
                predictions,
                args.repeat,
                show_cameras=args.show_cameras,
                max_points=args.max_points,
                downsample=method,
            )
            print(
                f"{frames:4d} frames {SIDE}x{SIDE} {method:7s} cap {args.max_points:,}: {seconds:6.2f} s  "
                f"{len(capped.glb) / 1e6:8.1f} MB  {capped.point_count:>11,} points  "
                f"size x{len(capped.glb) / len(base.glb):.3f}  time x{seconds / base_time:.2f}"
            )
        if frames == args.writer_baseline_frames:
            writer_against_trimesh(predictions, args.repeat)
        del predictions


if __name__ == "__main__":
    main()
