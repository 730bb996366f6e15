#!/usr/bin/env python
"""What a phone gets: GLB size, bytes per point, export time and viewer load time, default vs full resolution.

    scripts/bench_export.py                       # 20 and 64 frames of 518x518
    scripts/bench_export.py --frames 20 --repeat 3 --no-viewer
    scripts/bench_export.py --frames 64 --budgets 400000 600000 1200000   # density against size and load time
    scripts/bench_export.py --speed-only          # the default export against the previous implementation

The predictions, the cases, the viewer's load times and the previous export: devkit/export_bench.py.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[20, 64])
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs")
    parser.add_argument("--show-cameras", action="store_true")
    parser.add_argument("--no-viewer", action="store_true", help="skip the load time in the phone viewer")
    parser.add_argument(
        "--speed-only", action="store_true",
        help="only the speed table: the default export against the previous implementation, the share of each step",
    )
    parser.add_argument("--speed-repeat", type=int, default=3, help="best of this many runs in the speed table")
    parser.add_argument(
        "--budgets", type=int, nargs="*", default=[],
        help="also the default options with these point caps (how density trades against size and load time)",
    )
    parser.add_argument(
        "--writer-baseline-frames", type=int, default=20,
        help="also time trimesh's GLB exporter on the points of this many frames (0: skip)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from devkit import export_bench

    export_bench.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
