"""The browser app (`GET /`) in a real browser (Debian's Chromium, headless, phone-sized) on the real service.

One browser for the module: a wrong password, then log in through the form,
send three photos through the file input, follow the job to its end, see the
cloud, re-export it with a stricter confidence cut, and open the share link in
a fresh browser context after logging out. Then, each in a fresh context: photos
dropped on the drop zone (and a text file and a video refused there), and a
VIP's video chosen in the video input, each followed to its drawn cloud.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.request
from pathlib import Path

import browser
import numpy as np
import pytest
from service_users import PASSWORD

from serve_app.app_args import settings_from_args
from serve_app.http.share_pages import glb_point_count
from serve_app.result_cache import ResultCache
from serve_app.stages import Job, Upload

BACKGROUND = (0x0F, 0x11, 0x15)  # the viewer's
USER = "carol"  # not VIP: photos only
VIP_USER = "vip"
RESULTS_LISTED = 200  # GET /api/results's most
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


# --- dropped photos, a VIP's video ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_video(tmp_path_factory) -> Path:
    """8 frames of 64x48 at 4 fps (MPEG-4 part 2 in MP4, OpenCV): 2 s, so 2 frames at the service's 1 fps."""
    import cv2

    path = tmp_path_factory.mktemp("web_video") / "clip.mp4"
    width, height = 64, 48
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 4, (width, height))
    assert writer.isOpened()
    y, x = np.mgrid[0:height, 0:width]
    for index in range(8):
        frame = (np.stack([x * 4, y * 5, (x + y + 6 * index) * 3], axis=-1) % 256).astype(np.uint8)
        cv2.rectangle(frame, (4 + 3 * index, 10), (24 + 3 * index, 36), (0, 200, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def _log_in_afresh(service, phone, username: str) -> None:
    """A new browser context (no cookie), the page, and `username` logged in on its home view."""
    phone.use_fresh_context()
    phone.open(_base(service) + "/")
    phone.wait_until("document.body.dataset.view === 'login'")
    _log_in(phone, username, PASSWORD)
    phone.wait_until("document.body.dataset.view === 'home'")


def _drop(phone, selector: str, files: list[tuple[str, str, bytes]]) -> list[bool]:
    """Drag files (name, type, bytes) over the middle of the element and drop them there: dragenter,
    dragover and drop at the element under that point, with a DataTransfer of Files made in the page.
    dispatchEvent's answer for each: False where the page cancelled the event (took the drop)."""
    left, top, right, bottom = phone.box(selector)
    x, y = (left + right) / 2, (top + bottom) / 2
    listed = json.dumps([[name, kind, base64.b64encode(data).decode("ascii")] for name, kind, data in files])
    return phone.evaluate(
        f"""(() => {{
            const transfer = new DataTransfer();
            for (const [name, type, data] of {listed}) {{
                transfer.items.add(new File([Uint8Array.from(atob(data), (c) => c.charCodeAt(0))], name, {{ type }}));
            }}
            const target = document.elementFromPoint({x}, {y});
            return ["dragenter", "dragover", "drop"].map((kind) => target.dispatchEvent(new DragEvent(kind, {{
                bubbles: true, cancelable: true, composed: true, clientX: {x}, clientY: {y}, dataTransfer: transfer,
            }})));
        }})()"""
    )


def _refused_drop(phone, files: list[tuple[str, str, bytes]]) -> str:
    """Drop files the page must refuse: its visible message; nothing is chosen and a submit sends nothing."""
    assert _drop(phone, "#drop", files)[1:] == [False, False]  # taken by the drop zone, not opened by the browser
    page = phone.evaluate(
        """(() => {
            const $ = (id) => document.getElementById(id);
            const shown = $("upload-error").getBoundingClientRect().height > 0;
            const state = { message: $("upload-error").textContent, shown, chosen: $("chosen").textContent };
            state.button = $("upload-button").disabled ? "disabled" : "enabled";
            $("upload-form").requestSubmit();  // an upload shows its progress at once
            state.progress = $("upload-progress").hidden ? "hidden" : "shown";
            return state;
        })()"""
    )
    assert page["message"] and page["shown"], page
    assert [page["chosen"], page["button"], page["progress"]] == ["", "disabled", "hidden"], page
    return page["message"]


def _record_progress(phone) -> None:
    """From now on the page keeps, in order, each progress line shown and each job state (window.seen)."""
    phone.evaluate(
        """(() => {
            window.seen = { lines: [], states: [] };
            const note = (list, value) => { if (value && value !== list.at(-1)) list.push(value); };
            new MutationObserver(() => {
                note(window.seen.lines, document.querySelector("#upload-progress .progress-text")?.textContent);
                note(window.seen.states, document.body.dataset.job);
            }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
        })()"""
    )


def _upload_to_a_drawn_cloud(service, phone) -> tuple[str, int]:
    """Press the upload button and follow the job to its cloud: (the result's hash, its points)."""
    _record_progress(phone)
    phone.click("#upload-button")
    phone.wait_until("document.body.dataset.view === 'result' && document.body.dataset.cloud !== 'loading'", 120000)
    body = phone.evaluate("({...document.body.dataset})")
    assert body["job"] == "done" and body["cloud"] == "shown", body
    seen = phone.evaluate("window.seen")
    print(f"progress shown: {seen}")
    assert seen["lines"] and seen["lines"][0].startswith("Uploading"), seen  # the upload's own progress came first
    assert seen["states"][-1] == "done" and "failed" not in seen["states"], seen
    hashed, points = body["hash"], int(body["points"])
    assert points == _points_of(service, hashed) > 0
    drawn = _drawn_share(phone, "#cloud")
    print(f"{points} points, {drawn:.2%} of the canvas drawn")
    assert drawn > 0.001, "the cloud is not drawn"
    return hashed, points


def _listed(phone) -> list[str]:
    """The hashes of the user's results, newest first (at most RESULTS_LISTED)."""
    answer = phone.evaluate(f"fetch('/api/results?limit={RESULTS_LISTED}').then((r) => r.json())")
    return [entry["hash"] for entry in answer["results"]]


def _digest_of(service, upload: Upload) -> str:
    """The result cache key the service gives this upload: a stored result's `source_digest`."""
    return ResultCache(settings_from_args(service.args)).key(upload)


def test_dropped_photos_are_what_is_reconstructed_and_other_drops_are_refused(service, phone, jpegs, tiny_video):
    _log_in_afresh(service, phone, USER)
    assert phone.evaluate("getComputedStyle(document.getElementById('video-row')).display") == "none"  # not VIP
    before = _listed(phone)

    message = _refused_drop(phone, [("notes.txt", "text/plain", b"not a photo"), ("photo.jpg", "image/jpeg", jpegs[0])])
    assert "notes.txt" in message and "photo.jpg" not in message, message
    message = _refused_drop(phone, [("clip.mp4", "video/mp4", tiny_video.read_bytes())])
    assert "VIP" in message, message

    photos = [jpeg + b"dropped" for jpeg in jpegs[:3]]  # bytes after the JPEG's end: a new upload, not a cached one
    taken = _drop(phone, "#drop", [(f"dropped-{i}.jpg", "image/jpeg", data) for i, data in enumerate(photos)])
    assert taken[1:] == [False, False]
    assert "3 photos" in phone.evaluate("document.getElementById('chosen').textContent")
    assert phone.evaluate("document.getElementById('upload-error').textContent") == ""  # the refusal is gone
    hashed, _ = _upload_to_a_drawn_cloud(service, phone)

    assert service.row(hashed).source_digest == _digest_of(service, Upload(Job(), images=tuple(photos)))
    assert _listed(phone) == [hashed, *before][:RESULTS_LISTED]  # one result more, and it is this one


def test_a_vip_sends_a_video_from_the_video_input_to_a_drawn_cloud(service, phone, tiny_video):
    _log_in_afresh(service, phone, VIP_USER)
    assert phone.evaluate("document.getElementById('who').textContent").endswith("(VIP)")
    assert phone.evaluate("getComputedStyle(document.getElementById('video-row')).display") != "none"
    before = _listed(phone)

    phone.choose_files("#video", [tiny_video])
    assert "1 video" in phone.wait_until("document.getElementById('chosen').textContent")
    hashed, _ = _upload_to_a_drawn_cloud(service, phone)

    video = np.frombuffer(tiny_video.read_bytes(), np.uint8)
    assert service.row(hashed).source_digest == _digest_of(service, Upload(Job(), video=video))
    assert _listed(phone) == [hashed, *before][:RESULTS_LISTED]
