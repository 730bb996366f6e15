"""scripts/bench_memory.py on the tiny preset: live-tensor peaks, slicing comparison, argument errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_memory.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--preset", "tiny", "--threads", "1", "--size", "56", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def test_whole_forward_peak():
    done = _run("--frames", "2")
    assert done.returncode == 0, done.stderr
    peak = float(re.search(r"ours: peak +([\d.]+) MiB", done.stdout).group(1))
    assert peak > 0


def test_slicing_holds_less_than_whole():
    done = _run("--slicing", "--frames", "8", "--token-chunk", "32")
    assert done.returncode == 0, done.stderr
    ratio = float(re.search(r"sliced / whole: x([\d.]+)", done.stdout).group(1))
    assert 0 < ratio < 1


def test_bad_arguments_are_named():
    for args, message in [(("--size", "50"), "multiple of 14"), (("--slicing", "--layers", "3"), "at least 4")]:
        done = _run(*args)
        assert done.returncode == 2 and message in done.stderr
