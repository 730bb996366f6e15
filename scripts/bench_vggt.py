#!/usr/bin/env python
"""Time and peak memory of one VGGT forward pass (aggregator + camera/depth/point heads).

    python scripts/bench_vggt.py --preset tiny --device cpu
    python scripts/bench_vggt.py --preset vggt-1b --device cpu --frames 1
    python scripts/bench_vggt.py --device cuda                 # full size, bf16 autocast

Inputs are random 518x518 frames, already preprocessed. Weights are a seeded
random init (or the deterministic synthetic rule with --synthetic): time and
memory do not depend on weight values. The forward runs through
InferenceRunner.run_model, i.e. with the service's device and precision.

Each frame count is also run as a naive baseline in the same process: all
aggregator layers kept, blocks working on all tokens at once (no token
slicing) and the DPT heads run on all frames at once (no chunking). Peak
memory: torch.cuda.max_memory_allocated on GPU; on CPU the process's peak
resident set (VmHWM, reset before each run via
/proc/self/clear_refs), reported as the rise above the resident size before
the run. The last columns give throughput relative to the 1-frame run and the
runner's own memory estimate (the figure its memory guard uses).

Comparison with the reference implementation (--upstream DIR):

    python scripts/bench_vggt.py --upstream /path/to/vggt-checkout --synthetic --threads 2 --frames 1 2
    python scripts/bench_vggt.py --upstream /path/to/vggt-checkout --synthetic --device cuda --frames 1 20 100 200

DIR is a checkout of the reference VGGT repository (the folder holding its
`vggt` package). Each model then runs in its own subprocess, one after the
other, so each process's peak memory belongs to one model only. Both get the
same weights (ours are built as above and loaded into the reference model
with strict=False; only its point-tracking head, which neither side runs,
stays unloaded) and the same random inputs, under inference_mode: float32 on
CPU; on CUDA the reference runs under the bf16 (fp16 without bf16) autocast
its README uses, ours through InferenceRunner. Each process does one 1-frame
warm-up forward, then one timed forward per frame count (CUDA: the median of
--repeats). The table gives both times and memory rises (peak RSS on CPU,
max_memory_allocated on CUDA, above what was held before the forward), their
ratios (ours / reference: below 1 means ours is faster or smaller) and how
closely the outputs of the first frames agree: max|ours - ref| / max|ref|. A
frame count one side cannot run (out of memory) is reported as such and the
other frame counts go on.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
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
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs from a checkout, installed or not
from serve_app.vggt.config import VGGTConfig  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FRAMES = (1, 8, 20, 50, 100, 200)
MiB = 1024**2
SDPA_BACKENDS = {
    "default": None,  # torch's own choice
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS so the next run's rise is not hidden by reuse."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class CpuPeak:
    """Peak resident memory of one run: reset VmHWM, read it afterwards."""

    def __init__(self) -> None:
        self.exact = True

    def start(self) -> None:
        _malloc_trim()
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
                f.write("5")  # resets the peak RSS counter to the current RSS
        except OSError:
            self.exact = False  # peak is then the process-lifetime peak
        self.base = (_status_kib("VmRSS") or 0) * 1024

    def stop(self) -> tuple[int, int]:
        """(peak bytes of the process, rise above the resident size at start)."""
        peak = (_status_kib("VmHWM") or 0) * 1024
        return peak, max(peak - self.base, 0)


class CudaPeak:
    def start(self) -> None:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self.base = torch.cuda.memory_allocated()

    def stop(self) -> tuple[int, int]:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return peak, peak - self.base


def transformer_blocks(model) -> list:
    """Every transformer block of the model (the ones `token_chunk` applies to)."""
    from serve_app.vggt.layers import Block

    return [m for m in model.modules() if isinstance(m, Block)]


@contextlib.contextmanager
def naive_baseline(model):
    """Keep all aggregator layers, never slice the blocks' tokens, run the heads on all frames in one chunk."""
    blocks = transformer_blocks(model)
    kept, config, token_chunks = model.aggregator.cached_layers, model.config, [b.token_chunk for b in blocks]
    model.aggregator.cached_layers = tuple(range(model.aggregator.cfg.depth))
    model.config = dataclasses.replace(config, head_chunk_frames=1 << 30)
    for block in blocks:
        block.token_chunk = None
    try:
        yield
    finally:
        model.aggregator.cached_layers = kept
        model.config = config
        for block, token_chunk in zip(blocks, token_chunks):
            block.token_chunk = token_chunk


def build_model(preset_name: str, seed: int, synthetic: bool):
    from serve_app.vggt import VGGT, preset

    torch.manual_seed(seed)
    model = VGGT(preset(preset_name))
    if synthetic:
        sys.path.insert(0, str(REPO_ROOT / "tests" / "vggt"))
        from synthetic_weights import fill_model

        fill_model(model)
    return model


def make_images(frames: int, size: int) -> torch.Tensor:
    """Random preprocessed frames [S,3,H,W] in [0,1], the same for a given frame count."""
    gen = torch.Generator().manual_seed(frames)
    return torch.rand(frames, 3, size, size, generator=gen)


def measure(forward, images: torch.Tensor, meter, cuda: bool = False):
    """(outputs, seconds, peak bytes, rise in bytes) of forward(images)."""
    gc.collect()
    meter.start()
    start = time.perf_counter()
    out = forward(images)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak, rise = meter.stop()
    return out, seconds, peak, rise


def run_once(runner, frames: int, size: int, meter) -> tuple[float, int, int]:
    """(seconds, peak bytes, rise in bytes) of one forward pass on `frames` random frames."""
    images = make_images(frames, size)
    cuda = runner.device.type == "cuda"
    out, seconds, peak, rise = measure(runner.run_model, images, meter, cuda)
    del out, images
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return seconds, peak, rise


# --- side-by-side comparison with the reference implementation (--upstream) ---

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
    _malloc_trim()
    meter = CudaPeak() if cuda else CpuPeak()
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
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", side, "--worker-out", out_dir]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vggt-1b", choices=("vggt-1b", "tiny"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--frames", type=int, nargs="+", default=list(DEFAULT_FRAMES))
    parser.add_argument("--size", type=int, default=VGGTConfig.img_size, help="square frame side (multiple of the patch size)")
    parser.add_argument("--weights-bf16", action="store_true", help="aggregator weights in bf16 (GPU)")
    parser.add_argument(
        "--baseline-max-frames",
        type=int,
        default=None,
        help="run the naive baseline only up to this many frames (default: all)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--synthetic", action="store_true", help="deterministic synthetic weights")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sdpa-backend",
        choices=tuple(SDPA_BACKENDS),
        default="default",
        help="force one scaled_dot_product_attention kernel (GPU kernel comparison)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per frame count with --upstream on CUDA")
    parser.add_argument(
        "--upstream",
        metavar="DIR",
        default=None,
        help="compare with the reference VGGT checkout in DIR (full size, one subprocess per model)",
    )
    parser.add_argument("--worker", choices=("ours", "upstream"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.upstream:
        if args.preset != "vggt-1b" or args.weights_bf16:
            parser.error("--upstream compares the full-size model with float32 weights")
        if args.device == "auto":
            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU is available")
        return compare_main(args)

    from serve_app.config import ModelSettings
    from tcp_proxy.errors import ServiceError
    from serve_app.vggt.runner import InferenceRunner, resolve_device

    try:
        resolve_device(args.device)  # before the (slow) model build
    except ServiceError as exc:
        print(f"bench_vggt: {exc.message}", file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = ModelSettings(preset=args.preset, device=args.device, weights_bf16=args.weights_bf16)
    t0 = time.perf_counter()
    model = build_model(args.preset, args.seed, args.synthetic)
    runner = InferenceRunner.from_model(model, settings)
    build_s = time.perf_counter() - t0
    cuda = runner.device.type == "cuda"
    meter = CudaPeak() if cuda else CpuPeak()
    device_name = torch.cuda.get_device_name(runner.device) if cuda else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"VGGT preset={args.preset} device={device_name} compute={str(runner.dtype).replace('torch.', '')} "
        f"weights={runner.weight_bytes / MiB:.0f} MiB ({sum(p.numel() for p in model.parameters()):,} params) "
        f"build={build_s:.1f}s input={args.size}x{args.size} "
        f"head_chunk={model.config.head_chunk_frames} weights={'synthetic' if args.synthetic else 'random init'} "
        f"sdpa={args.sdpa_backend}"
    )
    backend = SDPA_BACKENDS[args.sdpa_backend]
    with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
        return bench_frame_counts(args, runner, model, meter)


def bench_frame_counts(args, runner, model, meter) -> int:
    """Warm up, then one row per frame count: this runner, then the naive baseline."""
    cuda = runner.device.type == "cuda"
    try:
        run_once(runner, 1, args.size, meter)  # warm-up: kernel selection, allocator pools
    except RuntimeError as exc:  # e.g. a forced attention kernel this device lacks
        print(f"bench_vggt: the 1-frame warm-up failed: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1

    peak_name = "peak_alloc" if cuda else "peak_rss"
    header = (
        f"{'frames':>6} {'time_s':>9} {'ms/frame':>9} {'fps_vs_1':>8} {peak_name + '_MiB':>14} {'rise_MiB':>9} "
        f"{'est_MiB':>9} | {'naive_s':>9} {'naive_rise_MiB':>14} {'time_x':>7} {'mem_x':>6}"
    )
    print(header)
    print("-" * len(header))
    fps1 = None
    for frames in args.frames:
        try:
            sec, peak, rise = run_once(runner, frames, args.size, meter)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next size
            print(f"{frames:>6} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        fps = frames / sec
        fps1 = fps1 or (fps if frames == 1 else None)
        est = runner.estimate(frames, args.size, args.size).working
        ratio = f"{fps / fps1:8.2f}" if fps1 else f"{'-':>8}"
        row = (
            f"{frames:>6} {sec:9.2f} {1000 * sec / frames:9.1f} {ratio} {peak / MiB:14.0f} {rise / MiB:9.0f} "
            f"{est / MiB:9.0f} |"
        )
        naive = not args.no_baseline and (args.baseline_max_frames is None or frames <= args.baseline_max_frames)
        if naive:
            try:
                with naive_baseline(model):
                    nsec, _npeak, nrise = run_once(runner, frames, args.size, meter)
                row += f" {nsec:9.2f} {nrise / MiB:14.0f} {nsec / sec:7.2f} {nrise / max(rise, 1):6.2f}"
            except Exception as exc:  # noqa: BLE001 - the baseline may run out of memory
                row += f" naive failed: {type(exc).__name__}"
        else:
            row += f" {'-':>9} {'-':>14} {'-':>7} {'-':>6}"
        print(row, flush=True)
    if not cuda and not meter.exact:
        print("note: /proc/self/clear_refs not writable; peaks are process-lifetime peaks")
    print(
        "time_x, mem_x: naive baseline (all layers kept, no token slicing, heads unchunked) over this runner; "
        "fps_vs_1: frames/s relative to the 1-frame run; est: the memory guard's working-memory estimate"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
