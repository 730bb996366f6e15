#!/usr/bin/env python
"""Time and peak memory of one VGGT forward pass (aggregator + camera/depth/point heads).

    python scripts/bench_vggt.py --preset tiny --device cpu
    python scripts/bench_vggt.py --preset vggt-1b --device cpu --frames 1
    python scripts/bench_vggt.py --device cuda                 # full size, bf16 autocast
    python scripts/bench_vggt.py --upstream /path/to/vggt-checkout --synthetic --threads 2 --frames 1 2

What is measured, and how ours is compared with the reference checkout
(--upstream DIR): devkit/vggt_bench.py and devkit/vggt_reference.py.
"""

from __future__ import annotations

import argparse
import sys

import torch

from devkit import vggt_bench, vggt_reference
from serve_app.vggt.config import VGGTConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vggt-1b", choices=("vggt-1b", "tiny"))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--frames", type=int, nargs="+", default=list(vggt_bench.DEFAULT_FRAMES))
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
        choices=tuple(vggt_bench.SDPA_BACKENDS),
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        return vggt_reference.worker_main(args)
    if args.upstream:
        if args.preset != "vggt-1b" or args.weights_bf16:
            parser.error("--upstream compares the full-size model with float32 weights")
        if args.device == "auto":
            args.device = "cuda" if torch.cuda.is_available() else "cpu"
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU is available")
        return vggt_reference.compare_main(args)
    return vggt_bench.run(args)


if __name__ == "__main__":
    sys.exit(main())
