#!/usr/bin/env python
"""How soon a share page shows its cloud: the default 800,000-point GLB against a tiny one, in headless Chromium.

    scripts/bench_page.py                 # 20 frames exported with the default options, 3 loads each
    scripts/bench_page.py --repeat 5 --size 390 844

Each load is a fresh browser profile (three.js and the GLB over HTTP); the page's own clock
gives the times from the navigation's start. The server and the measurement: devkit/page_bench.py.
"""

from __future__ import annotations

import argparse
import sys

GOAL_MS = 1500.0  # the page shows the cloud within 1.5 s of the job's end


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20, help="synthetic frames of the default export (518x518)")
    parser.add_argument("--repeat", type=int, default=3, help="loads of each GLB (the median is printed)")
    parser.add_argument("--size", type=int, nargs=2, default=[390, 844], metavar=("WIDTH", "HEIGHT"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from devkit import page_bench

    loads = page_bench.run(args.frames, args.repeat, tuple(args.size))
    print(page_bench.report(loads, GOAL_MS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
