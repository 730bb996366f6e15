"""VGGT-1B against the reference implementation (a checkout of its repository), side by side.

Each model runs in its own subprocess (`scripts/bench_vggt.py --worker ours|upstream`), one after the
other, so each process's peak memory belongs to one model only; see devkit/vggt_bench.py for the
figures and scripts/bench_vggt.py for the options.
"""

from __future__ import annotations

import contextlib
import gc
import json
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import torch

from devkit.peak_rss import PeakRss, malloc_trim
from devkit.vggt_bench import CudaPeak, MiB, build_model, make_images, measure

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "bench_vggt.py"  # runs each side as `--worker`
COMPARED = ("depth", "world_points", "depth_conf", "world_points_conf", "pose_enc")


def import_reference(root: str):
    """The reference VGGT class from the checkout at `root`.

    Its model module imports the point-tracking head, which needs einops; that
    head only runs with query points (never here), so a placeholder module is
    registered when einops is not installed.
    """
    sys.path.insert(0, str(Path(root).resolve()))
    try:
        import einops  # noqa: F401
    except ImportError:
        placeholder = types.ModuleType("einops")

        def unavailable(*_args, **_kwargs):
            raise RuntimeError("einops is not installed (only the point-tracking head needs it)")

        placeholder.rearrange = placeholder.repeat = unavailable
        sys.modules["einops"] = placeholder
    from vggt.models.vggt import VGGT as ReferenceVGGT

    return ReferenceVGGT


def build_reference(root: str, seed: int, synthetic: bool):
    """Full-size reference model holding exactly the weights build_model gives ours."""
    ReferenceVGGT = import_reference(root)
    source = build_model("vggt-1b", seed, synthetic)
    model = ReferenceVGGT()
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    del source
    assert not unexpected, f"keys the reference model lacks: {unexpected[:5]}"
    assert all(k.startswith("track_head.") for k in missing), f"unloaded keys: {missing[:5]}"
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval()


def reference_forward(model, device: torch.device):
    """The reference model's forward as its README runs it: bf16 autocast on CUDA, float32 on CPU."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        autocast = torch.autocast("cuda", dtype=dtype)
    else:
        autocast = contextlib.nullcontext()

    def forward(images: torch.Tensor):
        with torch.inference_mode(), autocast:
            return model(images.to(device))

    return forward


COMPARED_FRAMES = 4  # outputs saved for the agreement check: the first frames only (200 frames of
# float32 point maps would be gigabytes per side)


def timed(forward, images: torch.Tensor, meter, cuda: bool, repeats: int):
    """measure() `repeats` times; (outputs of the last run, median seconds, max peak, max rise)."""
    runs = []
    out = None
    for _ in range(repeats):
        del out
        out, sec, peak, rise = measure(forward, images, meter, cuda)
        runs.append((sec, peak, rise))
    seconds = sorted(r[0] for r in runs)[len(runs) // 2]
    return out, seconds, max(r[1] for r in runs), max(r[2] for r in runs)


def worker_main(args) -> int:
    """One model in this process: warm up, time each frame count, save outputs for the parent."""
    warnings.filterwarnings("ignore", category=FutureWarning)  # the reference uses torch.cuda.amp.autocast
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    cuda = device.type == "cuda"
    t0 = time.perf_counter()
    if args.worker == "ours":
        from serve_app.config import ModelSettings
        from serve_app.vggt.runner import InferenceRunner

        model = build_model("vggt-1b", args.seed, args.synthetic)
        forward = InferenceRunner.from_model(model, ModelSettings(preset="vggt-1b", device=device.type)).run_model
    else:
        forward = reference_forward(build_reference(args.upstream, args.seed, args.synthetic).to(device), device)
    build_s = time.perf_counter() - t0
    gc.collect()
    malloc_trim()
    meter = CudaPeak() if cuda else PeakRss()
    t0 = time.perf_counter()
    forward(make_images(1, args.size))  # warm-up
    print(f"[{args.worker}] build {build_s:.1f}s, 1-frame warm-up {time.perf_counter() - t0:.1f}s", flush=True)
    repeats = args.repeats if cuda else 1
    for frames in args.frames:
        result = {"frames": frames, "exact": getattr(meter, "exact", True)}
        try:
            out, sec, peak, rise = timed(forward, make_images(frames, args.size), meter, cuda, repeats)
        except Exception as exc:  # noqa: BLE001 - out of memory (ours: TooManyFramesError): report, go on
            result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:100]}"
        else:
            first = {k: out[k][:, :COMPARED_FRAMES].float().cpu() for k in COMPARED}
            torch.save(first, Path(args.worker_out) / f"{args.worker}_{frames}.pt")
            result.update(seconds=sec, peak=peak, rise=rise)
            del out, first
        print("RESULT " + json.dumps(result), flush=True)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return 0


def run_worker(side: str, args, out_dir: str) -> dict[int, dict]:
    """Run one side in a fresh interpreter; {frames: measurements}."""
    cmd = [sys.executable, str(SCRIPT), "--worker", side, "--worker-out", out_dir]
    cmd += ["--upstream", args.upstream, "--size", str(args.size), "--seed", str(args.seed)]
    cmd += ["--frames", *map(str, args.frames), "--device", args.device, "--repeats", str(args.repeats)]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--synthetic"] if args.synthetic else []
    results = {}
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT) as proc:
        for line in proc.stdout:
            if line.startswith("RESULT "):
                row = json.loads(line[len("RESULT ") :])
                results[row["frames"]] = row
                took = row["error"] if "error" in row else f"{row['seconds']:.2f}s"
                print(f"[{side}] {row['frames']} frames: {took}", flush=True)
            else:
                print(line, end="", flush=True)
    if proc.returncode:
        print(f"bench_vggt: the {side} run exited with status {proc.returncode}", file=sys.stderr)
    return results


def agreement(out_dir: str, frames: int) -> dict[str, float] | None:
    """max|ours - ref| / max|ref| per compared output."""
    try:
        ours = torch.load(Path(out_dir) / f"ours_{frames}.pt")
        ref = torch.load(Path(out_dir) / f"upstream_{frames}.pt")
    except FileNotFoundError:
        return None
    return {k: ((ours[k] - ref[k]).abs().max() / ref[k].abs().max().clamp_min(1e-30)).item() for k in COMPARED}


def run_summary(row: dict) -> str:
    return f"{row['seconds']:.2f}s, {row['peak'] / MiB:.0f} MiB peak"


def compare_main(args) -> int:
    """Both implementations, one subprocess each, then the side-by-side table."""
    if args.device == "cuda":
        precision = "bf16 autocast" if torch.cuda.is_bf16_supported() else "fp16 autocast"
        where = f"{torch.cuda.get_device_name()}, {precision}, median of {args.repeats} timed runs"
        memory = "max_memory_allocated"
    else:
        where = f"cpu, {args.threads or torch.get_num_threads()} threads, float32, one timed run"
        memory = "peak RSS"
    print(
        f"VGGT-1B ours vs reference ({args.upstream}): {where} per frame count, input {args.size}x{args.size}, "
        f"weights={'synthetic' if args.synthetic else f'random init (seed {args.seed})'}, "
        "one 1-frame warm-up per process",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_vggt_") as out_dir:
        ours = run_worker("ours", args, out_dir)
        ref = run_worker("upstream", args, out_dir)
        header = (
            f"{'frames':>6} {'ours_s':>8} {'ref_s':>8} {'time_x':>7} {'ours_rise_MiB':>13} {'ref_rise_MiB':>12} "
            f"{'mem_x':>6} {'ours_peak_MiB':>13} {'ref_peak_MiB':>12} | "
            + " ".join(f"{'err_' + k:>12}" for k in ("depth", "points", "depth_cf", "points_cf", "pose"))
        )
        print(header)
        print("-" * len(header))
        for frames in args.frames:
            a, b = ours.get(frames), ref.get(frames)
            sides = {"ours": a or {"error": "did not finish"}, "reference": b or {"error": "did not finish"}}
            if any("error" in row for row in sides.values()):
                cells = [f"{side}: {row.get('error') or run_summary(row)}" for side, row in sides.items()]
                print(f"{frames:>6} " + "; ".join(cells), flush=True)
                continue
            err = agreement(out_dir, frames) or {}
            print(
                f"{frames:>6} {a['seconds']:8.2f} {b['seconds']:8.2f} {a['seconds'] / b['seconds']:7.2f} "
                f"{a['rise'] / MiB:13.0f} {b['rise'] / MiB:12.0f} {a['rise'] / max(b['rise'], 1):6.2f} "
                f"{a['peak'] / MiB:13.0f} {b['peak'] / MiB:12.0f} | "
                + " ".join(f"{err.get(k, float('nan')):12.1e}" for k in COMPARED),
                flush=True,
            )
    if not all(r["exact"] for r in (*ours.values(), *ref.values())):
        print("note: /proc/self/clear_refs not writable; peaks include the model build")
    print(
        f"time_x, mem_x: ours / reference (below 1: ours faster / smaller); rise: {memory} above what was held "
        f"before the forward (weights excluded), peak: with the weights; err_*: max|ours - ref| / max|ref| over "
        f"the first {COMPARED_FRAMES} frames"
    )
    return 0
