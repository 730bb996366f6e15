"""Share links over Serve's HTTP proxy, and the page in a real browser (Debian's Chromium, headless)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

import browser
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


def _get(service, path: str, headers: dict | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{service.http_port}{path}", headers=headers or {})
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
