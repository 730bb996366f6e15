#!/usr/bin/env python
"""What glibc's tuning against heap fragmentation (`tune_malloc`) costs each stage, with and without huge pages.

    .venv/bin/python scripts/bench_malloc.py [--photos 3] [--repeats 5] [--rounds 2] [--torch-threads 1]

What one run measures: devkit/malloc_bench.py. Linux only.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=3, help="photos per request (the load benchmarks send 3)")
    parser.add_argument("--repeats", type=int, default=5, help="requests per process after one warm-up")
    parser.add_argument("--rounds", type=int, default=2, help="turns of the three settings, each a fresh process")
    parser.add_argument("--torch-threads", type=int, default=1, help="model.torch_threads (1: one core)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.photos, args.repeats, args.rounds, args.torch_threads) < 1:
        parser.error("--photos, --repeats, --rounds and --torch-threads must be positive")
    if not sys.platform.startswith("linux"):
        parser.error("glibc's allocator: Linux only")
    from devkit import malloc_bench

    malloc_bench.run(args.photos, args.repeats, args.rounds, args.torch_threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
