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

Also our GLB writer against trimesh's exporter on the same points (--writer-baseline-frames),
and the export's speed: the default export against the previous implementation
(`previous_export`: np.percentile over every confidence, a partition of every
key, fancy indexing, [N, 3] float64 quantization), run alternately in this
process, with the share of each step (`serve_app.export.laps`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from unittest import mock

import numpy as np

from devkit.phone_viewer import PhoneViewer
from serve_app.export import ExportOptions, export_glb, glb
from serve_app.export.glb import INT16_STEPS, Geometry, write_glb
from serve_app.export.laps import Laps
from serve_app.export.points import MIN_CONFIDENCE
from serve_app.export.scene import VIEW_SIZE, build_geometries, even_sample
from serve_app.export.transforms import homogeneous
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
    """Print the table (each case of each frame count of `args`, with the ratios default / full), then the
    speed table (`speed_row`); `args.speed_only`: the speed table alone."""
    viewer = None if args.no_viewer or args.speed_only else PhoneViewer()
    if viewer is not None and not viewer.available:
        print("(no viewer load times: Chromium or .venv/viewer-test/node_modules/babylonjs missing)")
        viewer = None

    speed_rows = []
    if not args.speed_only:
        print("| frames | case | points | bytes/point | GLB MB | export s | viewer load ms | first frame ms |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for frames in args.frames:
        predictions = synthetic_predictions(frames)
        speed_rows.append(speed_row(frames, predictions, max(args.repeat, args.speed_repeat)))
        if args.speed_only:
            continue
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
    print(f"\nDefault export against the previous implementation (best of {max(args.repeat, args.speed_repeat)}):\n")
    print(SPEED_HEADER)
    print("\n".join(speed_rows))


def _previous_quantized(vertices: np.ndarray):
    """The writer's int16 quantization as it was: whole [N, 3] float64 temporaries."""
    lower, upper = vertices.min(axis=0).astype(np.float64), vertices.max(axis=0).astype(np.float64)
    centre = (lower + upper) / 2
    half = np.maximum((upper - lower) / 2, np.finfo(np.float32).tiny)
    rows = np.zeros((len(vertices), 4), np.int16)
    rows[:, :3] = np.clip(np.rint((vertices - centre) / half * INT16_STEPS), -INT16_STEPS, INT16_STEPS)
    least, greatest = rows[:, :3].min(axis=0).tolist(), rows[:, :3].max(axis=0).tolist()
    return rows, centre.tolist(), (half / INT16_STEPS * INT16_STEPS).tolist(), least, greatest


def previous_export(predictions: dict, max_points: int = ExportOptions().max_points) -> bytes:
    """The default export (point map, 3rd percentile, confidence cap, quantized, centred) as it was
    implemented before: the baseline of `speed_row`. The same bytes, but where keys tie at the cap
    (about one export in ten): the partition kept whichever it left, today's cut the earlier point."""
    points = predictions["world_points"].reshape(-1, 3)
    conf = predictions["world_points_conf"].reshape(-1)
    images = predictions["images"]  # [S, 3, H, W]
    threshold = float(np.percentile(conf, ExportOptions().conf_percentile))
    kept = np.flatnonzero((conf >= threshold) & (conf > MIN_CONFIDENCE))
    lower, upper = np.percentile(points[even_sample(kept)], [5, 95], axis=0)
    marker_scale = float(np.linalg.norm(upper - lower))
    if len(kept) > max_points:
        uniform = 1 - np.random.default_rng(0).random(len(kept), dtype=np.float32)
        keys = np.log(uniform) / np.maximum(conf[kept], MIN_CONFIDENCE)
        kept = kept[np.sort(np.argpartition(keys, len(kept) - max_points)[len(kept) - max_points :])]
    frame, pixel = np.divmod(kept, images.shape[2] * images.shape[3])
    row, column = np.divmod(pixel, images.shape[3])
    colors = (images[frame, :, row, column] * 255).astype(np.uint8)
    world_to_camera = homogeneous(predictions["extrinsic"])
    geometries = build_geometries(
        points[kept].astype(np.float32), colors, world_to_camera, show_cameras=False, marker_scale=marker_scale
    )
    offset = -np.median(geometries[0].vertices, axis=0)
    with mock.patch.object(glb, "_quantized", _previous_quantized):
        return write_glb(geometries, quantize=True, offset=offset, scale=VIEW_SIZE / marker_scale)


STEPS = ("select", "scale", "cap", "align", "quantize", "write")


@contextlib.contextmanager
def _clock(times: dict[str, list[float]], name: str):
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    times.setdefault(name, []).append(time.perf_counter() - wall)
    times.setdefault(f"{name} cpu", []).append(time.process_time() - cpu)


def speed_row(frames: int, predictions: dict, repeat: int) -> str:
    """One row of the speed table: previous and today's default export, best of `repeat` each, run
    alternately (a loaded machine slows both alike), and the share of each step in today's best run."""
    times: dict[str, list[float]] = {}
    best_laps, same = None, True
    for _ in range(repeat):
        with _clock(times, "previous"):
            before = previous_export(predictions)
        laps = Laps()
        with _clock(times, "now"):
            now = export_glb(predictions, ExportOptions(), laps=laps).glb
        if times["now"][-1] == min(times["now"]):
            best_laps = laps
        same = same and before == now
    previous, current = min(times["previous"]), min(times["now"])
    previous_cpu, current_cpu = min(times["previous cpu"]), min(times["now cpu"])
    total = sum(best_laps.seconds.values())
    shares = " | ".join(f"{100 * best_laps.seconds.get(step, 0.0) / total:.0f}" for step in STEPS)
    return (
        f"| {frames} | {previous:.2f} | {current:.2f} | x{previous / current:.2f} | "
        f"{previous_cpu:.2f} | {current_cpu:.2f} | x{previous_cpu / current_cpu:.2f} | {shares} | "
        f"{'yes' if same else 'no'} |"
    )


SPEED_HEADER = (
    "| frames | previous s | now s | previous / now | previous cpu s | now cpu s | cpu previous / now | "
    "select % | scale % | cap % | align % | quantize % | write % | same bytes |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)
