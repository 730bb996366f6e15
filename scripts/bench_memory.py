#!/usr/bin/env python
"""Live-tensor peak of one VGGT forward pass: ours against the reference, or token slicing on and off.

    python scripts/bench_memory.py --frames 4                          # full size, ours
    python scripts/bench_memory.py --frames 4 --upstream DIR           # and the reference checkout in DIR
    python scripts/bench_memory.py --slicing --frames 16 --token-chunk 4096

The peak is the most bytes held at once by tensors the forward creates
(tests/support/live_memory.py): independent of the allocator, so it is what
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
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs from a checkout, installed or not
from serve_app.vggt.config import VGGTConfig  # noqa: E402

PATCH = VGGTConfig.patch_size

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024**2


def peak_of(run) -> tuple[int, float]:
    """(live-tensor peak bytes, seconds) of run() under inference_mode."""
    from live_memory import LiveTensorBytes

    start = time.perf_counter()
    with torch.inference_mode(), LiveTensorBytes() as meter:
        out = run()
    del out
    return meter.peak, time.perf_counter() - start


def compare_with_reference(args) -> None:
    from bench_vggt import import_reference

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
    from bench_vggt import transformer_blocks

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vggt-1b", choices=("vggt-1b", "tiny"))
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=VGGTConfig.img_size, help=f"square frame side (multiple of {PATCH})")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--upstream", metavar="DIR", default=None, help="also measure the reference checkout in DIR")
    parser.add_argument("--slicing", action="store_true", help="aggregator with and without token slicing")
    parser.add_argument("--token-chunk", type=int, default=4096, help="token_chunk of the sliced run")
    parser.add_argument("--layers", type=int, default=4, help="aggregator layers of the --slicing model (>= 4)")
    args = parser.parse_args(argv)
    if args.size % PATCH or args.size < PATCH:
        parser.error(f"--size must be a positive multiple of {PATCH}")
    if args.layers < 4:
        parser.error("--layers must be at least 4 (the heads read four layers)")
    if args.upstream and (args.slicing or args.preset != "vggt-1b"):
        parser.error("--upstream compares the full-size model's whole forward pass")
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # the reference uses torch.cuda.amp.autocast
    (compare_slicing if args.slicing else compare_with_reference)(args)
    return 0


if __name__ == "__main__":
    sys.path[:0] = [str(REPO_ROOT / "scripts"), str(REPO_ROOT / "tests" / "support")]
    sys.exit(main())
