#!/usr/bin/env python
"""Benchmark video frame sampling against ffmpeg's `-vf fps=0.4,scale=W:H` on the same file.

    .venv/bin/python scripts/bench_frames.py [--video FILE] [--codec h264 hevc] [--repeat 1]

What is timed and how the model inputs are compared: devkit/frames_bench.py.
Uses the `ffmpeg` command when there is one, else PyAV's own filters. Exit
status 1 when a goal (ours <= 0.5x ffmpeg's time, >= 40 dB PSNR) is missed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if width < 2 or height < 2 or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"width and height must be even and at least 2, got {text!r}")
    return width, height


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, help="video to sample (default: generated phone-like clips)")
    parser.add_argument("--codec", nargs="+", choices=["h264", "hevc"], default=["h264", "hevc"],
                        help="codecs of the generated clips (those this PyAV build can encode)")
    parser.add_argument("--size", type=size, default=(3840, 2160), help="generated clips' WIDTHxHEIGHT")
    parser.add_argument("--seconds", type=float, default=60.0, help="generated clips' length")
    parser.add_argument("--gop", type=int, default=30, help="generated clips' keyframe interval, frames (30 fps)")
    parser.add_argument("--fps", type=float, default=0.4, help="sampling rate, frames per second")
    parser.add_argument("--max-frames", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the best of each is reported")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.gop < 1 or args.fps <= 0 or args.max_frames < 1 or args.repeat < 1:
        parser.error("--seconds, --gop, --fps, --max-frames and --repeat must be positive")
    if args.video is not None and not args.video.is_file():
        parser.error(f"no such video: {args.video}")
    from devkit import frames_bench

    return frames_bench.run(args)


if __name__ == "__main__":
    sys.exit(main())
