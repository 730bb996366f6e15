"""scripts/bench_decode.py: the bounded decode against the unbounded baseline, from the command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_decode.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_bounded_decode_peaks_lower_and_keeps_smaller_frames():
    done = run("--count", "4", "--side", "4000")
    assert done.returncode == 0, done.stderr
    frames = {m[0]: int(m[1]) for m in re.findall(r"(bounded|unbounded): peak growth +\d+ MiB, frames +(\d+) MiB", done.stdout)}
    assert frames["unbounded"] == 183 and frames["bounded"] < 40  # 4 x 16 MP x 3 bytes, and 4 x <= 3.1 MP
    ratio = float(re.search(r"bounded / unbounded peak: ([\d.]+)", done.stdout).group(1))
    assert ratio < 1


def test_bad_arguments_are_refused():
    done = run("--count", "0")
    assert done.returncode == 2 and "must be positive" in done.stderr
