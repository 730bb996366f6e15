"""scripts/bench_decode.py: time, quality and peak memory of the photo decode against plain Pillow, from the command line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_decode.py"
SMALL = ("--photos", "2", "--width", "1600", "--height", "1200", "--repeat", "1", "--count", "3", "--side", "3000")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def report() -> str:
    done = run(*SMALL)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_every_variant_is_timed_against_pillow_with_its_peak(report):
    pattern = r"^\| ([a-z, 1]+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| (\d+) \| (\d+) \|$"
    rows = {m[0]: [float(value) for value in m[1:]] for m in re.findall(pattern, report, re.MULTILINE)}
    assert set(rows) == {"pillow", "previous", "model, 1 thread", "model"}
    assert rows["pillow"][1] == 1.0 and rows["pillow"][4] == 0  # the baseline keeps no frame
    assert rows["model"][4] < rows["previous"][4]  # 518 px frames against 2048 px ones
    assert all(seconds > 0 and cpu > 0 for seconds, _, cpu, *_ in rows.values())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_model_input_of_every_photo_is_compared(report):
    psnr = {m[0]: float(m[1]) for m in re.findall(r"^\| ([^|]+?) \| (inf|[\d.]+) \| [\d.]+ \| \d+ \|$", report, re.MULTILINE)}
    assert set(psnr) == {
        "phone photo 00", "phone photo 01", "chart, JPEG", "chart, JPEG turned (EXIF 6)", "chart, PNG", "phone photo 00, PNG"
    }
    assert psnr["phone photo 00"] > 40 and psnr["phone photo 01"] > 40
    assert psnr["chart, PNG"] == psnr["phone photo 00, PNG"] == float("inf")  # decoded whole, resized once: exact
    assert f"lowest PSNR {min(psnr.values()):.1f} dB" in report


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_the_bounded_decode_of_huge_pngs_peaks_lower_and_keeps_smaller_frames(report):
    frames = {m[0]: int(m[1]) for m in re.findall(r"(bounded|unbounded): peak growth +\d+ MiB, frames +(\d+) MiB", report)}
    assert frames["unbounded"] == 77 and frames["bounded"] < 3  # 3 x 9 MP x 3 bytes, and 3 x 518 x 518 x 3
    ratio = float(re.search(r"bounded / unbounded peak: ([\d.]+)", report).group(1))
    assert ratio < 1


def test_bad_arguments_are_refused():
    done = run("--count", "0")
    assert done.returncode == 2 and "must be positive" in done.stderr
