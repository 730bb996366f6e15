"""scripts/bench_frames.py: our sampling against ffmpeg's fps+scale filters, on a clip it makes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_frames.py"


def run(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp)}  # the generated clip goes here
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, env=env)


def test_a_small_clip_is_timed_against_the_baseline_and_compared_at_the_model_input(tmp_path):
    done = run("--size", "1280x720", "--seconds", "5", "--codec", "h264", tmp=tmp_path)
    assert done.returncode in (0, 1), done.stderr  # 1: a goal missed (timings on a loaded machine)
    out = done.stdout
    assert "frames kept at 1046x588" in out and list(tmp_path.glob("bench_frames_h264_1280x720_5s_gop30.mp4"))
    rows = dict(re.findall(r"^\| (ffmpeg|ours) \| [\d.]+ \| [\d.]+ \| (\d+) \|$", out, re.MULTILINE))
    assert rows == {"ffmpeg": "2", "ours": "2"}  # 0 and 2.5 s, both ways
    assert re.search(r"ratio ours/ffmpeg: wall [\d.]+, CPU [\d.]+", out)
    psnr = float(re.search(r"PSNR of model inputs vs full-size decode: min ([\d.]+) dB", out).group(1))
    assert psnr >= 40.0


def test_bad_arguments_are_refused(tmp_path):
    done = run("--size", "1279x720", tmp=tmp_path)
    assert done.returncode == 2 and "even" in done.stderr
    done = run("--video", str(tmp_path / "missing.mp4"), tmp=tmp_path)
    assert done.returncode == 2 and "no such video" in done.stderr
