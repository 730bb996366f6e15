"""scripts/bench_malloc.py: each stage's CPU time with glibc's defaults and tuned, one fresh process each."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_malloc.py"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False)


def test_every_stage_is_timed_with_both_settings_and_their_ratio():
    done = run("--photos", "1", "--repeats", "1", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+)x \|$", done.stdout, re.MULTILINE)
    assert [row[0] for row in rows] == ["decode", "inference", "export"]
    for _, default_ms, tuned_ms, ratio in rows:
        default, tuned = float(default_ms), float(tuned_ms)
        assert default > 0 and tuned > 0  # every stage takes CPU time under both settings
        low, high = (tuned - 0.05) / (default + 0.05), (tuned + 0.05) / (default - 0.05)  # ms printed to 0.1
        assert low - 0.005 <= float(ratio) <= high + 0.005


def test_a_non_positive_count_is_refused_with_a_message():
    done = run("--repeats", "0")
    assert done.returncode == 2 and "must be positive" in done.stderr
