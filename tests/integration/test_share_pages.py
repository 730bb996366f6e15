"""Share links over Serve's HTTP proxy, and the page in a real browser (Debian's Chromium, headless)."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path

import browser
import numpy as np
import pytest
from service_users import PASSWORD
from wire_client import Conn

BACKGROUND = (0x0F, 0x11, 0x15)


@pytest.fixture(scope="module")
def shared(service, jpegs):
    """(hash, GLB bytes) of a reconstruction made over TCP."""
    with Conn(service.port) as c:
        assert c.login("vip", PASSWORD)[0] is True
        reply = c.images([jpegs[0] + b"share page", jpegs[1]])
    assert reply.error is None, reply.data[:100]
    return reply.name[:-4], reply.data


def _get(service, path: str, headers: dict | None = None, method: str = "GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{service.http_port}{path}", headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_glb_over_http_equals_get_glb(service, shared):
    hashed, glb = shared
    status, headers, body = _get(service, f"/g/{hashed}.glb")
    assert status == 200 and body == glb
    assert int(headers["content-length"]) == len(glb) and headers["content-type"] == "model/gltf-binary"
    assert headers["etag"] == f'"{hashed}"' and headers["cache-control"] == "private, max-age=31536000, immutable"
    status, headers, body = _get(service, f"/g/{hashed}.glb", {"Range": "bytes=0-3"})
    assert status == 206 and body == b"glTF" and headers["content-range"] == f"bytes 0-3/{len(glb)}"
    status, _, body = _get(service, f"/g/{hashed}.glb", {"Range": "bytes=5-3"})  # invalid: ignored
    assert status == 200 and body == glb
    status, _, body = _get(service, f"/g/{hashed}.glb", {"Range": "bytes=0-" + "9" * 5000})
    assert status == 206 and body == glb
    status, _, body = _get(service, f"/g/{hashed}.glb", {"If-None-Match": f'"{hashed}"'})
    assert status == 304 and body == b""


def test_the_page_and_its_viewer_come_from_the_service(service, shared):
    hashed, _ = shared
    status, headers, page = _get(service, f"/g/{hashed}")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert headers["cache-control"] == "private, no-cache"
    assert f"{hashed}.glb".encode() in page and b"https://" not in page
    for module in ("build/three.module.js", "examples/jsm/loaders/GLTFLoader.js"):
        status, headers, body = _get(service, f"/viewer/{module}")
        if status == 404 and not Path(".venv/web/node_modules/three").exists():
            pytest.skip("three.js is not installed (scripts/setup_venv.sh installs it from npm)")
        assert status == 200 and headers["content-type"].startswith("text/javascript") and body


@pytest.mark.parametrize(
    "path", ["/g/" + "0" * 64, "/g/" + "0" * 64 + ".glb", "/g/not-a-hash", "/g/..%2F..%2Fetc%2Fpasswd", "/viewer/package.json"]
)
def test_unknown_malformed_or_outside_is_404(service, path):
    assert _get(service, path)[0] == 404


def test_the_page_shows_the_cloud_in_a_real_browser(service, shared, tmp_path):
    browser.chromium()
    if not Path(".venv/web/node_modules/three/build/three.module.js").exists():
        pytest.skip("three.js is not installed (scripts/setup_venv.sh installs it from npm)")
    hashed, _ = shared
    screenshot = tmp_path / "share_page.png"
    url = f"http://127.0.0.1:{service.http_port}/g/{hashed}"
    dom = browser.render(url, screenshot)
    print(f"screenshot of {url}: {screenshot}")
    assert 'data-state="shown"' in dom, dom[-2000:]
    assert int(dom.split('data-points="')[1].split('"')[0]) > 1000
    covered = browser.coverage(screenshot, BACKGROUND)
    assert covered > 0.01, f"only {covered:.2%} of the page shows points"


COMPARED = ("content-length", "content-type", "etag", "cache-control", "accept-ranges", "content-range")


@pytest.mark.parametrize("suffix, headers", [("", {}), (".glb", {}), (".glb", {"Range": "bytes=0-3"}), (".jpg", {})])
def test_head_answers_as_get_without_body(service, shared, suffix, headers):
    hashed, _ = shared
    got = _get(service, f"/g/{hashed}{suffix}", headers)
    headed = _get(service, f"/g/{hashed}{suffix}", headers, method="HEAD")
    assert got[0] in (200, 206) and headed[0] == got[0] and headed[2] == b""
    for name in COMPARED:
        assert headed[1].get(name) == got[1].get(name), name
    assert int(headed[1]["content-length"]) == len(got[2])
    assert _get(service, "/g/" + "0" * 64 + suffix, method="HEAD")[0] == 404


def test_the_preview_picture_and_its_tags(service, shared):
    from PIL import Image

    hashed, _ = shared
    status, headers, jpeg = _get(service, f"/g/{hashed}.jpg")
    assert status == 200 and headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg)).size[0] == 400
    page = _get(service, f"/g/{hashed}")[2].decode()
    base = f"http://127.0.0.1:{service.http_port}/g/{hashed}"
    assert f'<meta property="og:image" content="{base}.jpg">' in page
    assert f'<meta property="og:url" content="{base}">' in page
    assert '<meta property="og:title" content="3D scan, ' in page and " points" in page


def _cloud(pixels: np.ndarray) -> np.ndarray:
    """Where a screenshot differs from the background, above the control bar at the bottom."""
    differs = np.abs(pixels - np.array(BACKGROUND)).sum(axis=-1) > 30
    return differs[: int(differs.shape[0] * 0.8)]


@pytest.fixture
def phone(tmp_path):
    """A headless browser tab the size of a portrait phone screen (390 x 844)."""
    browser.chromium()
    if not Path(".venv/web/node_modules/three/build/three.module.js").exists():
        pytest.skip("three.js is not installed (scripts/setup_venv.sh installs it from npm)")
    from browser_session import BrowserSession

    session = BrowserSession(tmp_path / "profile", (390, 844))
    yield session
    session.close()


def test_a_portrait_phone_sees_the_whole_cloud_and_the_controls_work(service, shared, phone):
    hashed, _ = shared
    phone.open(f"http://127.0.0.1:{service.http_port}/g/{hashed}")
    assert phone.wait_until("document.body.dataset.state !== 'loading' && document.body.dataset.state") == "shown"
    framed = phone.screenshot()
    cloud = _cloud(framed)
    third = cloud.shape[1] // 3
    left, middle, right = cloud[:, :third].mean(), cloud[:, third:-third].mean(), cloud[:, -third:].mean()
    print(f"cloud in the left/middle/right thirds: {left:.2%} {middle:.2%} {right:.2%}")
    assert left > 0.002 and right > 0.002, "the cloud does not reach both sides: framed off centre"
    assert min(left, right) > max(left, right) / 3, "the cloud is framed off centre"
    edge = max(2, cloud.shape[1] // 40)
    rims = np.concatenate([cloud[:, :edge], cloud[:, -edge:]], axis=1).mean()
    assert rims < middle, f"the cloud runs past the screen's sides ({rims:.2%} of the edge columns)"

    phone.drag((195, 300), (330, 380))  # orbit
    turned = phone.screenshot()
    assert np.abs(turned - framed).sum(axis=-1).astype(bool).mean() > 0.01, "dragging did not turn the view"
    phone.click("#reset")
    assert np.abs(phone.screenshot() - framed).max() <= 8, "reset view did not come back to the first framing"

    assert phone.evaluate("document.body.dataset.pointSize") == "2"
    phone.evaluate("(() => { const s = document.getElementById('size'); s.value = '6';"
                   " s.dispatchEvent(new Event('input')); return true; })()")  # fmt: skip
    assert phone.evaluate("[document.body.dataset.pointSize, location.hash]") == ["6", "#size=6"]
    grown = _cloud(phone.screenshot()).mean()
    assert grown > cloud.mean() + 0.02, f"bigger points cover {grown:.2%}, the default ones {cloud.mean():.2%}"
