#!/usr/bin/env python
"""Peak memory of decoding an upload of huge, highly compressed photos, bounded against unbounded.

    .venv/bin/python scripts/bench_decode.py [--count 20] [--side 7071]

What the two variants are and how their peaks are measured: devkit/decode_bench.py.
Linux only (/proc/self/status).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="copies of the photo in the upload (the app sends <= 20)")
    parser.add_argument("--side", type=int, default=7071, help="width and height of the PNG (7071: 50 MP)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 1 or args.side < 1:
        parser.error("--count and --side must be positive")
    from devkit import decode_bench

    decode_bench.run(args.count, args.side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
