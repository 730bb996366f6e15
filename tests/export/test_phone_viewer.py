"""Our GLBs in the phone app's viewer: its page logic with Babylon.js from npm, in headless Chromium.

The page does what the app's WebView does: `BABYLON.SceneLoader.Append` of the
GLB, an `ArcRotateCamera` at radius 5 around the world origin, a hemispheric
light, clear colour #0F1115. Babylon.js is installed by scripts/test.sh
(`.venv/viewer-test`) and served from this machine; the test is skipped where
Chromium or Babylon.js is missing.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
from pathlib import Path

import browser
import numpy as np
import pytest
from stage_doubles import small_predictions

from serve_app.export import ExportOptions, export_glb

REPO = Path(__file__).resolve().parents[2]
BABYLON = REPO / ".venv" / "viewer-test" / "node_modules"
BACKGROUND = (0x0F, 0x11, 0x15)
PAGE = REPO / "scripts" / "phone_viewer" / "viewer.html"  # the app's viewer logic, also used by bench_export.py



@pytest.fixture(scope="module")
def viewer(tmp_path_factory):
    """(folder the page is served from, its base URL)."""
    browser.chromium()
    files = [BABYLON / "babylonjs" / "babylon.js", BABYLON / "babylonjs-loaders" / "babylonjs.loaders.min.js"]
    if not all(path.is_file() for path in files):
        pytest.skip("Babylon.js is not installed (scripts/test.sh installs it from npm into .venv/viewer-test)")
    root = tmp_path_factory.mktemp("phone-viewer")
    for path in files:
        shutil.copy(path, root / path.name)
    shutil.copy(PAGE, root / "viewer.html")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def show(viewer, glb: bytes, name: str, tmp_path: Path) -> tuple[np.ndarray, dict]:
    """Render `glb` in the viewer page: (pixels, the page's data attributes)."""
    root, base = viewer
    (root / f"{name}.glb").write_bytes(glb)
    screenshot = tmp_path / f"{name}.png"
    dom = browser.render(f"{base}/viewer.html?glb={name}.glb", screenshot)
    body = dom.split("<body", 1)[1].split(">", 1)[0]
    data = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body))
    print(f"{name}: {data} screenshot {screenshot}")
    return browser.pixels(screenshot), data


def unit_scene() -> dict[str, np.ndarray]:
    """A coloured dome about 2 units wide, 2.5 units in front of camera 0 (4 frames of 64x64)."""
    frames, side = 4, 64
    u, v = np.meshgrid(np.linspace(-1, 1, side), np.linspace(-1, 1, side))
    dome = np.stack([u, v, 2.5 - 0.5 * np.sqrt(np.clip(2 - u**2 - v**2, 0, None))], axis=-1)
    points = np.stack([dome + [0, 0, 0.05 * s] for s in range(frames)]).astype(np.float32)
    images = np.stack([np.stack([(u + 1) / 2, (v + 1) / 2, np.full_like(u, 0.8)]) for _ in range(frames)])
    predictions = small_predictions(frames)
    predictions.update(
        world_points=points,
        world_points_conf=np.full((frames, side, side), 5.0, np.float32),
        images=images.astype(np.float32),
    )
    return predictions


def test_quantized_and_float32_look_the_same_and_fill_the_view(viewer, tmp_path):
    predictions = unit_scene()
    quantized, seen_q = show(viewer, export_glb(predictions, ExportOptions()).glb, "unit_quantized", tmp_path)
    float32, seen_f = show(viewer, export_glb(predictions, ExportOptions(quantize=False)).glb, "unit_float32", tmp_path)
    assert seen_q["state"] == seen_f["state"] == "shown", (seen_q, seen_f)
    covered = (np.abs(quantized - np.array(BACKGROUND)).sum(axis=-1) > 30).mean()
    assert covered > 0.05, f"the scene covers {covered:.2%} of the view"
    differ = (np.abs(quantized - float32).sum(axis=-1) > 30).mean()
    assert differ < 0.005, f"{differ:.2%} of the pixels differ between quantized and float32"


def test_a_tiny_model_result_is_shown_around_the_orbit_centre(viewer, tmp_path):
    from serve_app.config import AppSettings
    from serve_app.stages import Frames, InferenceStage, Job

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (120, 160, 3), dtype=np.uint8) for _ in range(2)]
    settings = AppSettings.from_dict({"model": {"preset": "tiny", "device": "cpu"}})
    predictions = InferenceStage(settings).run(Frames(Job(), frames, "images")).arrays
    pixels, seen = show(viewer, export_glb(predictions, settings.export).glb, "tiny_model", tmp_path)
    assert seen["state"] == "shown", seen
    covered = (np.abs(pixels - np.array(BACKGROUND)).sum(axis=-1) > 30).mean()
    assert covered > 0.02, f"the result covers {covered:.3%} of the view"
