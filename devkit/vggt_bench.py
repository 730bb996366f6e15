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

Comparison with the reference implementation (--upstream DIR, devkit/vggt_reference.py):

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
import dataclasses
import gc
import sys
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from devkit.peak_rss import PeakRss

DEFAULT_FRAMES = (1, 8, 20, 50, 100, 200)
MiB = 1024**2
SDPA_BACKENDS = {
    "default": None,  # torch's own choice
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
}


class CudaPeak:
    """Peak of torch's CUDA allocations over one run: `start()`, the run, `stop()`."""

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
        from devkit.synthetic_weights import fill_model

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


def run(args: argparse.Namespace) -> int:
    """Build the runner of `args`, then time each frame count, with the naive baseline beside."""
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
    meter = CudaPeak() if cuda else PeakRss()
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
