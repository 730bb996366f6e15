"""Export again from stored predictions against the full path, on synthetic VGGT-shaped predictions.

`synthetic_predictions` makes every array the export reads for either point
source, with float32 noise in the low bits as a real model's outputs have
(so the stored file's size and time are a real model's), the depth points
unprojected as the inference does. `run` stores one result as the service
does (an owner: GLB, preview picture and predictions), then times, best of
`repeat`: the full export path from the float32 predictions (`ExportStage.run`:
export, pack, store) against `ExportStage.reexport` (load the stored file,
export, store a new GLB), and checks that both write the same GLB bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

HEIGHT, WIDTH = 392, 518  # a 4:3 photo at VGGT's input size


def synthetic_predictions(frames: int, height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> dict:
    """VGGT's outputs for `frames` frames of height x width: a wavy surface seen by cameras moving along x."""
    from serve_app.vggt.geometry import unproject_depth_map_to_point_map  # torch

    rng = np.random.default_rng(seed)
    depth = 2.0 + 0.3 * np.sin(np.linspace(0, 6, width, dtype=np.float32))[None, None, :] * np.cos(
        np.linspace(0, 4, height, dtype=np.float32)
    )[None, :, None]
    depth = (depth + rng.normal(0, 0.01, (frames, height, width))).astype(np.float32)[..., None]
    extrinsic = np.tile(np.eye(4, dtype=np.float32)[:3], (frames, 1, 1))
    extrinsic[:, 0, 3] = -0.1 * np.arange(frames, dtype=np.float32)
    intrinsic = np.tile(np.array([[400, 0, width / 2], [0, 400, height / 2], [0, 0, 1]], np.float32), (frames, 1, 1))
    from_depth = unproject_depth_map_to_point_map(depth, extrinsic, intrinsic)
    images = rng.uniform(0, 1, (frames, 3, height, width)).astype(np.float32)
    images[:, :, : height // 4] = 0.0  # a black band and a white band for the background masks
    images[:, :, -height // 4 :] = 1.0
    return {
        "pose_enc": np.zeros((frames, 9), np.float32),
        "depth": depth,
        "depth_conf": (1 + np.exp(rng.normal(0, 1, (frames, height, width)))).astype(np.float32),
        "world_points": (from_depth + rng.normal(0, 0.005, from_depth.shape)).astype(np.float32),
        "world_points_conf": (1 + np.exp(rng.normal(0, 1, (frames, height, width)))).astype(np.float32),
        "extrinsic": extrinsic,
        "intrinsic": intrinsic,
        "world_points_from_depth": from_depth,
        "images": images,
    }


def _best(repeat: int, action):
    """The least wall and CPU seconds of `repeat` calls of `action`, and its last result."""
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = action()
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return Timing(wall, cpu), result


@dataclasses.dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.2f} s ({self.cpu:.2f} CPU s)"


def _savez_compressed(npz: bytes) -> bytes:
    """The arrays of `npz` written again by `np.savez_compressed` (the baseline: every member deflated, level 6)."""
    import io

    with np.load(io.BytesIO(npz)) as members:
        arrays = {key: members[key] for key in members.files}
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def run(args: argparse.Namespace) -> None:
    from serve_app.config import AppSettings
    from serve_app.export import export_glb
    from serve_app.stages import ExportStage, Job, Predictions
    from serve_app.storage import Database, GlbStore
    from serve_app.storage import predictions as stored
    from serve_app.storage.models import User

    arrays = synthetic_predictions(args.frames, args.height, args.width)
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{Path(folder) / 'bench.db'}")
        db.upgrade()
        with db.session() as session:
            session.add(User(id=1, username="bench", password_hash="x"))
        store = GlbStore(db, Path(folder) / "storage")
        stage = ExportStage(AppSettings(), store)
        item = Predictions(Job(1, "bench.jpg"), arrays, args.frames)

        export_s, _ = _best(args.repeat, lambda: export_glb(arrays, stage.options))
        pack_s, npz = _best(args.repeat, lambda: stored.pack(arrays))
        full_s, result = _best(args.repeat, lambda: stage.run(item))
        load_s, _ = _best(args.repeat, lambda: stored.load(npz, "pointmap"))
        savez_s, savez = _best(args.repeat, lambda: _savez_compressed(npz))
        savez_load_s, _ = _best(args.repeat, lambda: stored.load(savez, "pointmap"))
        again_s, again = _best(args.repeat, lambda: stage.reexport(1, result.hashed_name, {}))
        depth_s, _ = _best(args.repeat, lambda: stage.reexport(1, result.hashed_name, {"source": "depth"}))
        options = {"conf_percentile": 30, "max_points": None}
        full_res_s, full_res = _best(args.repeat, lambda: stage.reexport(1, result.hashed_name, options))
        expected = export_glb(arrays, dataclasses.replace(stage.options, **options)).glb
        db.dispose()

    raw = sum(np.asarray(arrays[key]).nbytes for key in ("world_points", "world_points_conf", "depth", "depth_conf"))
    print(f"{args.frames} frames {args.width}x{args.height}, best of {args.repeat}")
    print(f"stored predictions: {len(npz) / 1e6:.1f} MB (float32 points/confidences/depth {raw / 1e6:.1f} MB + colours)")
    print(f"  np.savez_compressed of the same arrays: {len(savez) / 1e6:.1f} MB, written in {savez_s}, "
          f"loaded in {savez_load_s}: {savez_s.cpu / pack_s.cpu:.1f}x the CPU time to write, "
          f"{savez_load_s.cpu / load_s.cpu:.1f}x to load")
    print(f"full path (ExportStage.run: export {export_s} + pack {pack_s} + store): {full_s}")
    print(f"re-export (load {load_s} + export + store), default options: {again_s}")
    print(f"  = {again_s.wall / full_s.wall:.2f}x the full path's wall time, {again_s.cpu / full_s.cpu:.2f}x its CPU time")
    print(f"re-export, depth source (unprojected again): {depth_s}")
    print(f"re-export, conf_percentile 30, every point ({full_res.point_count} points): {full_res_s}")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} (1 min)")
    same = again.glb == result.glb and full_res.glb == expected
    print(f"GLBs byte-identical to exports of the float32 originals: {'yes' if same else 'NO'}")
