"""scripts/bench_malloc.py: each stage's CPU time and page faults with glibc's defaults, tuned, and tuned with
huge pages, one fresh process each."""

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


def test_every_stage_is_timed_with_each_setting_and_their_ratios():
    done = run("--photos", "1", "--repeats", "1", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    number = r"([\d.]+)"
    rows = re.findall(rf"^\| (\w+) \| {number} \| {number} \| {number} \| {number}x \| {number}x \|$", done.stdout, re.M)
    assert [row[0] for row in rows] == ["decode", "inference", "export"]
    for _, *cells in rows:
        default, tuned, huge, tuned_ratio, huge_ratio = map(float, cells)
        assert default > 0 and tuned > 0 and huge > 0  # every stage takes CPU time under each setting
        for ms, ratio in ((tuned, tuned_ratio), (huge, huge_ratio)):
            low, high = (ms - 0.05) / (default + 0.05), (ms + 0.05) / (default - 0.05)  # ms printed to 0.1
            assert low - 0.005 <= ratio <= high + 0.005
    faults = re.search(r"^\| inference \| ([\d.]+)k \| ([\d.]+)k \| ([\d.]+)k \|$", done.stdout, re.M)
    default_k, tuned_k, _ = map(float, faults.groups())
    # what tune_malloc pays for memory that goes back to the OS: the forward pass's temporaries of a MiB or
    # more are mapped afresh each request, where glibc's default heap keeps reusing them
    assert tuned_k > 2 * default_k, done.stdout


def test_a_non_positive_count_is_refused_with_a_message():
    done = run("--repeats", "0")
    assert done.returncode == 2 and "must be positive" in done.stderr
