"""Benchmark video frame sampling against ffmpeg's `-vf fps=0.4,scale=W:H` on the same file.

    .venv/bin/python scripts/bench_frames.py [--video FILE] [--codec h264 hevc] [--repeat 1]

Without --video, a phone-like clip is made once per codec and kept in the
temp directory (`devkit.media.phone_video`: 3840x2160, 60 s, 30 fps, a
keyframe every second, no B-frames, ~40 Mbit/s). Each round times, on it:

* ffmpeg: every frame decoded, then `fps=0.4,scale=W:H` and RGB out, W x H
  being the size our frames are kept at. The `ffmpeg` command when there is
  one (its children's CPU time is counted); else the same filter graph run
  by PyAV in this process (the line says which);
* ours: `sample_video(fps=0.4)` as the service calls it, frames kept at
  `DecodeTarget().decode_size` (twice the 518-px model input); only its
  wall-time cap is lifted, so that a busy machine cannot cut a round short.

It prints wall and CPU seconds of each (best of `--repeat`), ours/ffmpeg
(goal: <= 0.5) and the CPU seconds one request costs. Quality: our frames
and a plain full-size decode of the same frames (their times from the
packets' timestamps and the sampling rules of `serve_app.frames.sampling`,
each decoded from the keyframe before it)
both go through the model's preprocessing (crop mode); the PSNR of the
model inputs is printed (goal: >= 40 dB).
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from devkit.media import phone_video
from serve_app.frames import sample_video
from serve_app.frames.bounds import DecodeTarget
from serve_app.frames.sampling import FrameSelector, sample_times
from serve_app.frames.video_limits import VideoLimits

ENCODERS = {"h264": "libx264", "hevc": "libx265"}
PSNR_GOAL_DB = 40.0
RATIO_GOAL = 0.5


@dataclass
class Timing:
    wall: float
    cpu: float
    frames: int


def run(args: argparse.Namespace) -> int:
    """Benchmark each video of `args`; 0 when every goal is met, 1 otherwise."""
    videos = [args.video] if args.video else [clip(codec, args) for codec in available_codecs(args.codec)]
    ffmpeg = shutil.which("ffmpeg")
    baseline = f"ffmpeg command ({ffmpeg})" if ffmpeg else "ffmpeg's filters run by PyAV (no ffmpeg command here)"
    print(f"baseline: {baseline}; CPUs: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}; rate: {args.fps} fps")
    met = True
    for video in videos:
        met &= bench_video(video, ffmpeg, args)
    return 0 if met else 1


def available_codecs(wanted: list[str]) -> list[str]:
    """The codecs of `wanted` this PyAV build can encode; says which it skips."""
    usable = []
    for codec in wanted:
        try:
            av.Codec(ENCODERS[codec], "w")
            usable.append(codec)
        except Exception:  # noqa: BLE001 - an encoder missing from this build
            print(f"skipping {codec}: this PyAV build has no {ENCODERS[codec]} encoder")
    return usable


def clip(codec: str, args: argparse.Namespace) -> Path:
    """The phone-like test clip for `codec`, made once in the temp directory."""
    width, height = args.size
    name = f"bench_frames_{codec}_{width}x{height}_{args.seconds:g}s_gop{args.gop}.mp4"
    path = Path(tempfile.gettempdir()) / name
    if not (path.exists() and path.stat().st_size > 0):
        print(f"making {path} (once) ...", flush=True)
        partial = path.with_suffix(".part.mp4")
        phone_video(partial, args.seconds, width, height, codec=ENCODERS[codec], gop=args.gop)
        partial.replace(path)
    return path


def bench_video(video: Path, ffmpeg: str | None, args: argparse.Namespace) -> bool:
    """Print the timings and the PSNR for one video; whether both goals are met."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        codec, width, height = stream.codec_context.name, stream.codec_context.width, stream.codec_context.height
    kept = DecodeTarget().decode_size(width, height)
    print(f"\n{video.name}: {codec} {width}x{height}, {video.stat().st_size / 1e6:.0f} MB; frames kept at {kept[0]}x{kept[1]}")
    best: dict[str, Timing] = {}
    frames: list[np.ndarray] = []
    for _ in range(args.repeat):
        if ffmpeg:
            timing = measured(lambda: ffmpeg_command(ffmpeg, video, args.fps, kept), children=True)
        else:
            timing = measured(lambda: ffmpeg_filters(video, args.fps, kept))
        best["ffmpeg"] = faster(best.get("ffmpeg"), timing)
        timing = measured(lambda: ours(video, args, frames))
        best["ours"] = faster(best.get("ours"), timing)
    print("| | wall s | CPU s | frames |\n| --- | --- | --- | --- |")
    for name, timing in best.items():
        print(f"| {name} | {timing.wall:.2f} | {timing.cpu:.2f} | {timing.frames} |")
    wall_ratio = best["ours"].wall / best["ffmpeg"].wall
    cpu_ratio = best["ours"].cpu / best["ffmpeg"].cpu
    print(f"ratio ours/ffmpeg: wall {wall_ratio:.2f}, CPU {cpu_ratio:.2f} (goal <= {RATIO_GOAL})")
    print(f"CPU seconds per request: {best['ours'].cpu:.1f}")
    psnrs = model_input_psnr(video, frames, args.fps, args.max_frames)
    print(f"PSNR of model inputs vs full-size decode: min {min(psnrs):.1f} dB, mean {np.mean(psnrs):.1f} dB "
          f"over {len(psnrs)} frames (goal >= {PSNR_GOAL_DB:g})")
    return max(wall_ratio, cpu_ratio) <= RATIO_GOAL and min(psnrs) >= PSNR_GOAL_DB


def measured(work: Callable[[], object], children: bool = False) -> Timing:
    """Wall and CPU seconds of `work()` (this process's threads, or its child processes);
    `work` returns what it produced, or how many frames."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    before = resource.getrusage(who)
    start = time.perf_counter()
    result = work()
    wall = time.perf_counter() - start
    after = resource.getrusage(who)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timing(wall, cpu, result if isinstance(result, int) else len(result))  # type: ignore[arg-type]


def ours(video: Path, args: argparse.Namespace, frames: list[np.ndarray]) -> int:
    """`sample_video` as the service calls it; its frames replace those in `frames`."""
    unhurried = VideoLimits(max_seconds=3600.0)  # a loaded machine must not cut the measurement short
    frames[:] = sample_video(video, fps=args.fps, max_frames=args.max_frames, limits=unhurried)
    return len(frames)


def faster(old: Timing | None, new: Timing) -> Timing:
    return new if old is None or new.wall < old.wall else old


def ffmpeg_command(ffmpeg: str, video: Path, fps: float, size: tuple[int, int]) -> int:
    """`ffmpeg -vf fps=...,scale=W:H` to RGB on a pipe; the frame count."""
    result = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(video), "-vf", f"fps={fps},scale={size[0]}:{size[1]}",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True, capture_output=True,
    )
    return len(result.stdout) // (size[0] * size[1] * 3)


def ffmpeg_filters(video: Path, fps: float, size: tuple[int, int]) -> list[np.ndarray]:
    """The same work by PyAV: every frame decoded (threaded) into `fps`, `scale` and `format=rgb24`."""
    out: list[np.ndarray] = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        graph = av.filter.Graph()
        chain = [graph.add_buffer(template=stream), graph.add("fps", f"fps={fps}"),
                 graph.add("scale", f"{size[0]}:{size[1]}"), graph.add("format", "rgb24"), graph.add("buffersink")]
        for a, b in itertools.pairwise(chain):
            a.link_to(b)
        graph.configure()
        for frame in container.decode(stream):
            graph.push(frame)
            out.extend(_pulled(graph))
        graph.push(None)
        out.extend(_pulled(graph))
    return out


def _pulled(graph) -> list[np.ndarray]:
    frames = []
    while True:
        try:
            frames.append(graph.pull().to_ndarray())
        except (av.BlockingIOError, av.EOFError):
            return frames


def full_size_frames(video: Path, times: list[float]) -> list[np.ndarray]:
    """The frames at `times` (seconds), each decoded plainly from the keyframe before it, as full-size RGB."""
    frames = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        for t in times:
            container.seek(round(t / stream.time_base), stream=stream, backward=True)
            stream.codec_context.flush_buffers()
            frame = next(f for f in container.decode(stream) if f.pts is not None and f.time >= t - 1e-6)
            frames.append(frame.to_ndarray(format="rgb24"))
    return frames


def sampled_indices(times: list[float], fps: float, max_frames: int) -> list[int]:
    """Indices (presentation order) of the frames at `times` that plain sampling keeps."""
    span = max(0.0, times[-1] - times[0]) if len(times) > 1 else 0.0
    selector = FrameSelector(sample_times(times[0], fps, span, max_frames), 0.0, keep=lambda i: i)
    for i, t in enumerate(times):
        selector.offer(t, i)
    selector.finish()
    return selector.kept


def model_input_psnr(video: Path, ours: list[np.ndarray], fps: float, max_frames: int) -> list[float]:
    """PSNR (dB) of each of our frames' model input against that of the same frame decoded at full size."""
    from serve_app.vggt.preprocess import preprocess_images  # torch: only here

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        times = sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.size)
    wanted = sampled_indices(times, fps, max_frames)
    if len(wanted) != len(ours):
        raise RuntimeError(f"sampling kept {len(ours)} frames, the timestamps say {len(wanted)}")
    reference = [preprocess_images([full])[0] for full in full_size_frames(video, [times[i] for i in wanted])]
    psnrs = []
    for frame, full in zip(ours, reference):
        error = float((preprocess_images([frame])[0] - full).pow(2).mean())
        psnrs.append(float("inf") if error == 0 else 10 * np.log10(1.0 / error))
    return psnrs
