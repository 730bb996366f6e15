#!/usr/bin/env python
"""Benchmark video frame sampling against `ffmpeg -vf fps=...` on the same file.

    .venv/bin/python scripts/bench_frames.py [--video FILE] [--gop 30] [--repeat 3]

What is timed: devkit/frames_bench.py. Needs the `ffmpeg` command (Debian:
apt-get install ffmpeg).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, help="video to sample (default: a generated 60 s 1080p H.264)")
    parser.add_argument("--gop", type=int, default=30, help="keyframe interval of the generated video, frames")
    parser.add_argument("--fps", type=float, default=0.4, help="sampling rate, frames per second")
    parser.add_argument("--max-frames", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is reported")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from devkit import frames_bench

    return frames_bench.run(args)


if __name__ == "__main__":
    sys.exit(main())
