"""Benchmark video frame sampling against `ffmpeg -vf fps=...` on the same file.

    .venv/bin/python scripts/bench_frames.py [--video FILE] [--gop 30] [--repeat 3]

Without --video, a 60-second 1920x1080 H.264 test video (30 fps, keyframe
every `--gop` frames, ~15 Mbit/s like a phone) is made once with ffmpeg and
kept in the temp directory. Each round times, on that file:

* ffmpeg: decode, `-vf fps=0.4`, RGB frames piped back to this process;
* ours: `sample_video(fps=0.4)`, plain and with `sharpest=True`, at full size
  like ffmpeg's frames (`decode_max_pixels=None`).

It prints the best of `--repeat` rounds, ours/ffmpeg (goal: <= 1.0) and what
sharpest mode costs. Needs the `ffmpeg` command (Debian: apt-get install ffmpeg).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serve_app.frames import sample_video


def run(args: argparse.Namespace) -> int:
    """The rounds of `args`, then the best times and ratios; 2 when ffmpeg is missing."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        print("ffmpeg is missing: this benchmark compares against the ffmpeg command.\n"
              "Install it first (Debian/Ubuntu: apt-get install -y ffmpeg).", file=sys.stderr)
        return 2
    video = args.video or make_test_video(ffmpeg, args.gop)
    print(f"video: {video} ({video.stat().st_size / 1e6:.1f} MB)")
    print(f"ffmpeg: {ffmpeg_version(ffmpeg)}; CPUs: {os.cpu_count()}; rate: {args.fps} fps")

    timings: dict[str, list[float]] = {"ffmpeg": [], "ours": [], "ours_sharpest": []}
    counts: dict[str, int] = {}
    for _ in range(args.repeat):
        seconds, counts["ffmpeg"] = time_ffmpeg(ffmpeg, video, args.fps)
        timings["ffmpeg"].append(seconds)
        for name, sharpest in (("ours", False), ("ours_sharpest", True)):
            start = time.perf_counter()
            frames = sample_video(
                video, fps=args.fps, max_frames=args.max_frames, sharpest=sharpest, decode_max_pixels=None
            )
            timings[name].append(time.perf_counter() - start)
            counts[name] = len(frames)
            del frames

    best = {name: min(values) for name, values in timings.items()}
    for name, values in timings.items():
        rounds = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:>14}: best {best[name]:.2f} s over [{rounds}] s, {counts[name]} frames")
    ratio = best["ours"] / best["ffmpeg"]
    print(f"ratio ours/ffmpeg: {ratio:.2f} ({'goal met' if ratio <= 1.0 else 'slower than ffmpeg'})")
    print(f"ratio ours_sharpest/ffmpeg: {best['ours_sharpest'] / best['ffmpeg']:.2f}")
    print(f"sharpest=True costs {best['ours_sharpest'] - best['ours']:+.2f} s "
          f"({best['ours_sharpest'] / best['ours']:.1f}x plain)")
    return 0


def make_test_video(ffmpeg: str, gop: int) -> Path:
    """A 60 s 1080p30 H.264 video with moving, noisy content; made once."""
    path = Path(tempfile.gettempdir()) / f"bench_frames_1080p_60s_gop{gop}.mp4"
    if path.exists() and path.stat().st_size > 0:
        return path
    print(f"making {path} (once) ...", flush=True)
    partial = path.with_suffix(".part.mp4")
    subprocess.run(
        [ffmpeg, "-v", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30,noise=alls=12:allf=t",
         "-t", "60", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
         "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-bf", "2",
         "-b:v", "15M", "-maxrate", "15M", "-bufsize", "30M", str(partial)],
        check=True,
    )
    partial.replace(path)
    return path


def time_ffmpeg(ffmpeg: str, video: Path, fps: float) -> tuple[float, int]:
    """Seconds for ffmpeg to deliver the sampled RGB frames, and their count."""
    width, height = video_size(video)
    start = time.perf_counter()
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(video), "-vf", f"fps={fps}",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    )
    seconds = time.perf_counter() - start
    return seconds, len(result.stdout) // (width * height * 3)


def video_size(video: Path) -> tuple[int, int]:
    """Upright width and height, as both ffmpeg and sample_video output them."""
    height, width = sample_video(video, max_frames=1, decode_max_pixels=None)[0].shape[:2]
    return width, height


def ffmpeg_version(ffmpeg: str) -> str:
    out = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"
