"""scripts/bench_export.py's speed table, and its baseline: the previous export gives today's bytes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devkit.export_bench import previous_export, synthetic_predictions
from serve_app.export import ExportOptions, export_glb

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_export.py"


@pytest.mark.parametrize(
    "frames, side, max_points",
    [(2, 400, 20_000), (2, 400, 300_000), (3, 64, 1_000), (1, 64, 800_000)],  # windowed cut, whole cut, no cap
)
def test_the_previous_export_and_todays_write_the_same_bytes(frames, side, max_points):
    predictions = synthetic_predictions(frames, side=side, seed=frames + side)
    before = previous_export(predictions, max_points=max_points)
    assert export_glb(predictions, ExportOptions(max_points=max_points)).glb == before


def test_the_previous_export_differs_where_it_should():
    predictions = synthetic_predictions(1, side=64)
    assert previous_export(predictions, max_points=1_000) != previous_export(predictions, max_points=1_001)


def test_the_speed_table_compares_against_the_previous_export():
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--speed-only", "--frames", "1", "--speed-repeat", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| 1 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert re.fullmatch(r"x\d+\.\d\d", cells[3]) and re.fullmatch(r"x\d+\.\d\d", cells[6])
    shares = [int(cell) for cell in cells[7:13]]
    assert 97 <= sum(shares) <= 103 and shares[0] > 0  # every step timed, rounding aside
    assert cells[13] == "yes"  # 268,324 points, under the cap: no cut, the same bytes
    assert np.isfinite(float(cells[1])) and float(cells[2]) > 0
