#!/usr/bin/env python
"""Live-tensor peak of one VGGT forward pass: ours against the reference, or token slicing on and off.

    python scripts/bench_memory.py --frames 4                          # full size, ours
    python scripts/bench_memory.py --frames 4 --upstream DIR           # and the reference checkout in DIR
    python scripts/bench_memory.py --slicing --frames 16 --token-chunk 4096

What the peak is and what --slicing runs: devkit/memory_bench.py.
"""

from __future__ import annotations

import argparse
import sys

from serve_app.vggt.config import VGGTConfig

PATCH = VGGTConfig.patch_size


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="vggt-1b", choices=("vggt-1b", "tiny"))
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, default=VGGTConfig.img_size, help=f"square frame side (multiple of {PATCH})")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--upstream", metavar="DIR", default=None, help="also measure the reference checkout in DIR")
    parser.add_argument("--slicing", action="store_true", help="aggregator with and without token slicing")
    parser.add_argument("--token-chunk", type=int, default=4096, help="token_chunk of the sliced run")
    parser.add_argument("--layers", type=int, default=4, help="aggregator layers of the --slicing model (>= 4)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.size % PATCH or args.size < PATCH:
        parser.error(f"--size must be a positive multiple of {PATCH}")
    if args.layers < 4:
        parser.error("--layers must be at least 4 (the heads read four layers)")
    if args.upstream and (args.slicing or args.preset != "vggt-1b"):
        parser.error("--upstream compares the full-size model's whole forward pass")
    from devkit import memory_bench

    memory_bench.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
