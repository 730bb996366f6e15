"""Live-tensor peak of one VGGT forward pass: ours against the reference, or token slicing on and off.

    python scripts/bench_memory.py --frames 4                          # full size, ours
    python scripts/bench_memory.py --frames 4 --upstream DIR           # and the reference checkout in DIR
    python scripts/bench_memory.py --slicing --frames 16 --token-chunk 4096

The peak is the most bytes held at once by tensors the forward creates
(devkit/live_memory.py): independent of the allocator, so it is what
a GPU allocator would report as allocated, without its caching and kernel
workspaces; RSS (bench_vggt.py) adds both. float32 on the CPU, random
weights (memory does not depend on their values), input frames of --size.

--slicing runs only the aggregator of a model cut to --layers layers (DINO to
one block; the per-layer transients are the same at any depth) with narrow
DPT widths, once with every block working on all tokens and once with
`token_chunk`, and prints both peaks next to the memory guard's estimate.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
import time

import torch

from devkit.live_memory import LiveTensorBytes

MiB = 1024**2


def peak_of(run) -> tuple[int, float]:
    """(live-tensor peak bytes, seconds) of run() under inference_mode."""
    start = time.perf_counter()
    with torch.inference_mode(), LiveTensorBytes() as meter:
        out = run()
    del out
    return meter.peak, time.perf_counter() - start


def compare_with_reference(args) -> None:
    from devkit.vggt_reference import import_reference

    from serve_app.vggt import VGGT, preset

    images = torch.rand(args.frames, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    models = {"ours": lambda: VGGT(preset(args.preset))}
    if args.upstream:
        models["reference"] = import_reference(args.upstream)
    peaks = {}
    for name, build in models.items():
        model = build().eval()
        peaks[name], seconds = peak_of(lambda: model(images))
        print(f"{name:>9}: peak {peaks[name] / MiB:8.1f} MiB ({seconds:.1f}s)", flush=True)
        del model
    if "reference" in peaks:
        print(f"ours / reference: x{peaks['ours'] / peaks['reference']:.2f}")


def compare_slicing(args) -> None:
    from devkit.vggt_bench import transformer_blocks

    from serve_app.vggt import VGGT, preset
    from serve_app.vggt.runner import estimate_memory

    full = preset(args.preset)
    narrow = preset("tiny")  # DPT widths only: the heads do not run here
    cfg = dataclasses.replace(
        full,
        depth=args.layers,
        dino_depth=1,
        keep_layers=tuple(range(args.layers - 4, args.layers)),
        dpt_features=narrow.dpt_features,
        dpt_out_channels=narrow.dpt_out_channels,
        dpt_hidden=narrow.dpt_hidden,
    )
    torch.manual_seed(0)
    model = VGGT(cfg).eval()
    images = torch.rand(1, args.frames, 3, args.size, args.size)
    peaks = {}
    for name, chunk in (("whole", None), ("sliced", args.token_chunk)):
        for block in transformer_blocks(model):
            block.token_chunk = chunk
        peaks[name], seconds = peak_of(lambda: model.aggregator(images))
        est = estimate_memory(
            dataclasses.replace(cfg, token_chunk=chunk or 1 << 62), args.frames, args.size, args.size, 0
        )
        print(
            f"{name:>6} (token_chunk={chunk}): aggregator peak {peaks[name] / MiB:7.1f} MiB, "
            f"estimate {(est.tokens + est.kept_layers) / MiB:7.1f} MiB ({seconds:.1f}s)",
            flush=True,
        )
    print(f"sliced / whole: x{peaks['sliced'] / peaks['whole']:.2f}")


def run(args: argparse.Namespace) -> None:
    """The slicing comparison (`args.slicing`), else ours against the reference (when `args.upstream`)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # the reference uses torch.cuda.amp.autocast
    (compare_slicing if args.slicing else compare_with_reference)(args)
