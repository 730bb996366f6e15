"""Debian's Chromium, headless, for the tests of what people look at: one page, its DOM and a screenshot.

WebGL runs on SwiftShader (software). `--virtual-time-budget` lets the page load
its scripts and data and settle before the DOM is dumped and the screenshot taken.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def chromium() -> str:
    """The browser's path; the calling test is skipped where it is not installed."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it where it can)")
    return path


def render(url: str, screenshot: Path, *, size: tuple[int, int] = (640, 480), budget_ms: int = 30000) -> str:
    """Load `url`, write a PNG screenshot, return the DOM after the page settled."""
    done = subprocess.run(
        [
            chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
            "--enable-unsafe-swiftshader", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", f"--user-data-dir={screenshot.parent / (screenshot.stem + '-profile')}",
            f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}",
            "--run-all-compositor-stages-before-draw", f"--screenshot={screenshot}", "--dump-dom", url,
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert screenshot.is_file(), done.stderr[-2000:]
    return done.stdout


def pixels(screenshot: Path) -> np.ndarray:
    """[H, W, 3] int RGB of a screenshot."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(screenshot.read_bytes())).convert("RGB")).astype(int)


def coverage(screenshot: Path, background: tuple[int, int, int], tolerance: int = 30) -> float:
    """Share of the pixels that differ from the background colour by more than `tolerance` (summed over RGB)."""
    return float((np.abs(pixels(screenshot) - np.array(background)).sum(axis=-1) > tolerance).mean())
