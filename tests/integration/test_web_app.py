"""The browser app (`GET /`) in a real browser (Debian's Chromium, headless, phone-sized) on the real service.

One browser for the module: a wrong password, then log in through the form,
send three photos through the file input, follow the job to its end, see the
cloud, re-export it with a stricter confidence cut, and open the share link in
a fresh browser context after logging out.
"""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import browser
import numpy as np
import pytest
from service_users import PASSWORD

from serve_app.http.share_pages import glb_point_count

BACKGROUND = (0x0F, 0x11, 0x15)  # the viewer's
USER = "carol"  # not VIP: photos only
PHONE = (390, 844)


@pytest.fixture(scope="module")
def phone(tmp_path_factory):
    """One headless browser tab the size of a portrait phone screen, for the whole module."""
    browser.chromium()
    if not Path(".venv/web/node_modules/three/build/three.module.js").exists():
        pytest.skip("three.js is not installed (scripts/setup_venv.sh installs it from npm)")
    from browser_session import BrowserSession

    session = BrowserSession(tmp_path_factory.mktemp("web_app") / "profile", PHONE)
    yield session
    session.close()


def _base(service) -> str:
    return f"http://127.0.0.1:{service.http_port}"


def _drawn_share(phone, selector: str) -> float:
    """Share of the element's pixels (in a screenshot) that are not the viewer's background."""
    left, top, right, bottom = phone.box(selector)
    region = phone.screenshot()[top:bottom, left:right]
    assert region.size, f"{selector} has no area on the screen"
    return float((np.abs(region - np.array(BACKGROUND)).sum(axis=-1) > 30).mean())


def _points_of(service, hashed: str) -> int:
    with urllib.request.urlopen(f"{_base(service)}/g/{hashed}.glb", timeout=60) as response:
        glb = io.BytesIO(response.read())
    return glb_point_count(glb.read(20), glb.read)


def _log_in(phone, username: str, password: str) -> None:
    phone.fill("#username", username)
    phone.fill("#password", password)
    phone.click("#login-button")


def test_a_wrong_password_shows_the_error_and_stays_logged_out(service, phone):
    phone.open(_base(service) + "/")
    assert phone.wait_until("document.body.dataset.view !== 'loading' && document.body.dataset.view") == "login"
    _log_in(phone, USER, "not the password")
    message = phone.wait_until("document.getElementById('login-error').textContent")
    assert "ERROR_LOGIN_FAILED" in message
    assert phone.evaluate("document.body.dataset.view") == "login"
    assert phone.evaluate("fetch('/api/session').then((r) => r.status)") == 401


def test_photos_to_a_cloud_a_stricter_re_export_log_out_and_the_share_link(service, phone, jpegs, tmp_path):
    phone.open(_base(service) + "/")
    phone.wait_until("document.body.dataset.view === 'login'")
    _log_in(phone, USER, PASSWORD)
    phone.wait_until("document.body.dataset.view === 'home'")
    assert phone.evaluate("getComputedStyle(document.getElementById('video-row')).display") == "none"  # not VIP

    photos = []
    for index, jpeg in enumerate(jpegs[:3]):  # bytes after the JPEG's end: a new upload, never a cached result
        photos.append(tmp_path / f"photo-{index}.jpg")
        photos[-1].write_bytes(jpeg + b"web app")
    phone.choose_files("#photos", photos)
    assert "3 photos" in phone.wait_until("document.getElementById('chosen').textContent")
    phone.click("#upload-button")
    phone.wait_until("document.body.dataset.view === 'result' && document.body.dataset.cloud !== 'loading'", 120000)
    body = phone.evaluate("({...document.body.dataset})")
    assert body["job"] == "done" and body["cloud"] == "shown", body
    first, first_points = body["hash"], int(body["points"])
    assert first_points == _points_of(service, first) > 1000
    drawn = _drawn_share(phone, "#cloud")
    print(f"first cloud: {first_points} points, {drawn:.2%} of the canvas drawn")
    assert drawn > 0.01, "the cloud is not drawn"
    links = phone.evaluate("[document.getElementById('share-link').href, document.getElementById('download').href]")
    assert links == [f"{_base(service)}/g/{first}", f"{_base(service)}/g/{first}.glb"]

    phone.fill("#conf", "90")
    assert phone.evaluate("document.getElementById('conf-value').textContent") == "90"
    phone.click("#reexport")
    phone.wait_until(f"document.body.dataset.hash !== '{first}' && document.body.dataset.cloud === 'shown'", 120000)
    second, second_points = phone.evaluate("[document.body.dataset.hash, Number(document.body.dataset.points)]")
    print(f"re-exported at 90 %: {second_points} points")
    assert second_points == _points_of(service, second) and 0 < second_points < first_points
    assert _drawn_share(phone, "#cloud") > 0.001, "the re-exported cloud is not drawn"
    listed = phone.evaluate("fetch('/api/results').then((r) => r.json())")["results"]
    assert {entry["hash"] for entry in listed} >= {first, second}

    phone.click("#logout")
    phone.wait_until("document.body.dataset.view === 'login'")
    assert phone.evaluate("fetch('/api/session').then((r) => r.status)") == 401  # the session is gone

    phone.use_fresh_context()  # never logged in: no cookie
    phone.open(f"{_base(service)}/g/{second}")
    assert phone.wait_until("document.body.dataset.state !== 'loading' && document.body.dataset.state") == "shown"
    assert int(phone.evaluate("document.body.dataset.points")) == second_points
    assert _drawn_share(phone, "#scene") > 0.001, "the shared cloud is not drawn"
    phone.open(_base(service) + "/")
    assert phone.wait_until("document.body.dataset.view !== 'loading' && document.body.dataset.view") == "login"
