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
aggregator layers kept and the DPT heads run on all frames at once (no
chunking). Peak memory: torch.cuda.max_memory_allocated on GPU; on CPU the
process's peak resident set (VmHWM, reset before each run via
/proc/self/clear_refs), reported as the rise above the resident size before
the run. The last columns give throughput relative to the 1-frame run and the
runner's own memory estimate (the figure its memory guard uses).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FRAMES = (1, 8, 20, 50, 100, 200)
MiB = 1024**2


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


@contextlib.contextmanager
def naive_baseline(model):
    """Keep all aggregator layers and run the heads on all frames in one chunk."""
    kept, chunk = model.aggregator.cached_layers, model.head_chunk_frames
    model.aggregator.cached_layers = tuple(range(model.aggregator.cfg.depth))
    model.head_chunk_frames = 1 << 30
    try:
        yield
    finally:
        model.aggregator.cached_layers = kept
        model.head_chunk_frames = chunk


def build_model(preset_name: str, seed: int, synthetic: bool):
    from serve_app.vggt import VGGT, preset

    torch.manual_seed(seed)
    model = VGGT(preset(preset_name))
    if synthetic:
        sys.path.insert(0, str(REPO_ROOT / "tests" / "vggt"))
        from synthetic_weights import fill_model

        fill_model(model)
    return model


def run_once(runner, frames: int, size: int, meter) -> tuple[float, int, int]:
    """(seconds, peak bytes, rise in bytes) of one forward pass on `frames` random frames."""
    gen = torch.Generator().manual_seed(frames)
    images = torch.rand(frames, 3, size, size, generator=gen)  # [S,3,H,W] in [0,1]
    gc.collect()
    meter.start()
    start = time.perf_counter()
    out = runner.run_model(images)
    if runner.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak, rise = meter.stop()
    del out, images
    gc.collect()
    if runner.device.type == "cuda":
        torch.cuda.empty_cache()
    return seconds, peak, rise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vggt-1b", choices=("vggt-1b", "tiny"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--frames", type=int, nargs="+", default=list(DEFAULT_FRAMES))
    parser.add_argument("--size", type=int, default=518, help="square frame side (multiple of 14)")
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
    args = parser.parse_args(argv)

    from serve_app.config import ModelSettings
    from serve_app.errors import ServiceError
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
        f"head_chunk={model.head_chunk_frames} weights={'synthetic' if args.synthetic else 'random init'}"
    )
    run_once(runner, 1, args.size, meter)  # warm-up: kernel selection, allocator pools

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
        except Exception as exc:  # report and go on with the next size
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
            except Exception as exc:
                row += f" naive failed: {type(exc).__name__}"
        else:
            row += f" {'-':>9} {'-':>14} {'-':>7} {'-':>6}"
        print(row, flush=True)
    if not cuda and not meter.exact:
        print("note: /proc/self/clear_refs not writable; peaks are process-lifetime peaks")
    print(
        "time_x, mem_x: naive baseline (all layers kept, heads unchunked) over this runner; "
        "fps_vs_1: frames/s relative to the 1-frame run; est: the memory guard's working-memory estimate"
    )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())
