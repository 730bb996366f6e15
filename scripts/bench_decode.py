#!/usr/bin/env python
"""Photos to model input: decode time, quality and peak memory against a plain Pillow decode, in one run.

    .venv/bin/python scripts/bench_decode.py [--photos 20] [--width 4032] [--height 3024] [--repeat 3]
                                             [--mode crop] [--count 20] [--side 7071]

What the variants, the quality figures and the memory figures are: devkit/decode_bench.py.
Linux only (/proc/self/status).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=20, help="phone photos in the upload (the app sends <= 20)")
    parser.add_argument("--width", type=int, default=4032, help="width of the phone photos (4032: 12 MP)")
    parser.add_argument("--height", type=int, default=3024, help="height of the phone photos")
    parser.add_argument("--repeat", type=int, default=3, help="decodes of the photos per variant; the best counts")
    parser.add_argument("--mode", choices=("crop", "pad"), default="crop", help="the model's preprocessing mode")
    parser.add_argument("--count", type=int, default=20, help="copies of the huge PNG in its upload")
    parser.add_argument("--side", type=int, default=7071, help="width and height of the huge PNG (7071: 50 MP)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.photos, args.width, args.height, args.repeat, args.count, args.side) < 1:
        parser.error("--photos, --width, --height, --repeat, --count and --side must be positive")
    from devkit import decode_bench

    decode_bench.run(args.photos, args.width, args.height, args.repeat, args.mode, args.count, args.side)
    return 0


if __name__ == "__main__":
    sys.exit(main())
