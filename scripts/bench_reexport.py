#!/usr/bin/env python
"""Re-export from stored predictions against the full export path (export, pack, store), 20 frames of 518x392.

    scripts/bench_reexport.py                 # goal: a re-export under 1 s
    scripts/bench_reexport.py --frames 64 --repeat 1

The predictions and the timings: devkit/reexport_bench.py.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from devkit.reexport_bench import HEIGHT, WIDTH

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--height", type=int, default=HEIGHT)
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from devkit import reexport_bench

    reexport_bench.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
