"""scripts/bench_vggt.py runs end to end on the tiny preset and prints one row per frame count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_vggt.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), "--preset", "tiny", "--device", "cpu", "--threads", "1", "--size", "56", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def _bench(*args: str) -> list[list[str]]:
    done = _run(*args)
    assert done.returncode == 0, done.stderr
    return [line.split() for line in done.stdout.splitlines() if line.split() and line.split()[0].isdigit()]


def test_rows_with_naive_baseline_ratios():
    rows = _bench("--frames", "1", "3")
    assert [row[0] for row in rows] == ["1", "3"]
    for row in rows:
        seconds, estimate = float(row[1]), float(row[6])
        time_x, mem_x = float(row[-2]), float(row[-1])
        assert seconds > 0 and estimate > 0 and time_x > 0 and mem_x > 0


@pytest.mark.parametrize("backend", ["default", "flash"])
def test_forced_attention_kernel_without_baseline(backend):
    rows = _bench("--frames", "2", "--no-baseline", "--sdpa-backend", backend)
    assert len(rows) == 1 and rows[0][0] == "2" and rows[0][-1] == "-"


def test_unavailable_attention_kernel_is_a_clear_error():
    done = _run("--frames", "1", "--no-baseline", "--sdpa-backend", "cudnn")  # no cuDNN kernel on the CPU
    assert done.returncode == 1
    assert done.stderr.startswith("bench_vggt: the 1-frame warm-up failed: ")
    assert "Traceback" not in done.stderr
