#!/usr/bin/env python
"""What the Ray Serve service costs over the in-process pipeline, and its memory.

    .venv/bin/python scripts/bench_service.py                       # tiny model on CPU, synthetic media
    .venv/bin/python scripts/bench_service.py --preset vggt-1b --checkpoint model.pt --device auto \\
        --video clip.mp4 --images photos/

What one run measures: devkit/service_bench.py. Exit status 0 when the speed
goal holds, 2 otherwise.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--checkpoint", default="model.pt")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--video", help="a video file (default: a synthetic 25 s 640x360 H.264 clip)")
    p.add_argument("--images", help="a folder of photos (default: 10 synthetic 1024x768 JPEGs)")
    p.add_argument("--photos", type=int, default=10, help="photos per IMAGE request (default 10)")
    p.add_argument("--fps", type=float, default=0.4, help="video sampling rate (service default 0.4)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--upload-mb", type=int, default=200, help="size of the upload-memory payload (0: skip)")
    p.add_argument("--num-cpus", type=int, default=None, help="Ray's logical CPUs (default: the machine's)")
    p.add_argument("--json", help="also write the results to this JSON file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from devkit import service_bench

    return service_bench.run(args)


if __name__ == "__main__":
    sys.exit(main())
