"""The browser front's JSON API over Serve's HTTP proxy (docs/HTTP_API.md), against the real service.

Plain `http.client` requests to the `service` fixture's HTTP port: cookie
login, a photo upload followed over its event stream to a downloadable GLB,
and the refusals, including ERROR_BUSY from the admission the TCP server
shares with the API.
"""

from __future__ import annotations

import http.client
import json
import struct
import threading
import uuid
from contextlib import ExitStack

import pytest
from api_client import Browser, multipart
from service_users import MAX_PAYLOAD, PASSWORD
from wire_client import IMAGE, Conn


def events_until_final(browser: Browser, job_id: str) -> list[dict]:
    """The job's event stream read to its end: every status it sent."""
    connection = http.client.HTTPConnection("127.0.0.1", browser.port, timeout=120)
    try:
        connection.request("GET", f"/api/reconstructions/{job_id}/events", headers={"Cookie": browser.cookie})
        response = connection.getresponse()
        assert response.status == 200 and response.getheader("content-type").startswith("text/event-stream")
        events = []
        while line := response.readline():
            if line.startswith(b"data: "):
                events.append(json.loads(line[len(b"data: ") :]))
        return events
    finally:
        connection.close()


@pytest.fixture(scope="module")
def alice(service) -> Browser:
    browser = Browser(service.http_port)
    assert browser.login("alice")[0] == 200
    return browser


def test_login_sets_a_strict_http_only_cookie_and_a_wrong_password_is_401(service):
    browser = Browser(service.http_port)
    status, _, data = browser.login("alice", "wrong")
    assert (status, data["error"]) == (401, "ERROR_LOGIN_FAILED")
    status, headers, data = browser.login("vip")
    assert status == 200 and data["username"] == "vip" and data["is_vip"] is True
    flags = [part.strip().lower() for part in headers["set-cookie"].split(";")]
    assert flags[0].startswith("vggt_session=") and len(flags[0]) >= len("vggt_session=") + 43
    assert {"httponly", "samesite=strict", "path=/"} <= set(flags) and "secure" not in flags
    assert any(flag.startswith("max-age=") for flag in flags)
    status, _, again = browser.request("GET", "/api/session")
    assert status == 200 and again["csrf_token"] == data["csrf_token"]
    assert browser.request("POST", "/api/logout")[0] == 204
    assert browser.request("GET", "/api/session")[0] == 401  # the row is gone


def test_photos_become_a_glb_followed_over_the_event_stream(service, alice, jpegs):
    photos = [jpegs[0] + uuid.uuid4().bytes, jpegs[1], jpegs[2]]  # never seen before: no stored result
    status, _, data = alice.upload("photos", photos)
    owner, _, row_id = data["id"].partition(".")
    assert status == 202 and owner and len(row_id) == 32  # the replica running it, then its row
    events = events_until_final(alice, data["id"])
    final = events[-1]
    assert final["state"] == "done" and final["error"] is None, final
    assert all(event["state"] in ("queued", "decoding", "inferring", "exporting", "done") for event in events)
    status, _, body = Browser(service.http_port).request("GET", f"/g/{final['hash']}.glb")
    assert status == 200 and body[:4] == b"glTF"
    assert alice.request("GET", f"/api/reconstructions/{data['id']}")[2] == final
    status, _, listing = alice.request("GET", "/api/results?limit=5")
    assert status == 200 and final["hash"] in [r["hash"] for r in listing["results"]]
    mine = next(r for r in listing["results"] if r["hash"] == final["hash"])
    assert mine["point_count"] == final["point_count"] and mine["size"] == len(body)

    carol = Browser(service.http_port)
    assert carol.login("carol")[0] == 200
    status, _, data_other = carol.request("GET", f"/api/reconstructions/{data['id']}")
    assert (status, data_other["error"]) == (404, "ERROR_NOT_FOUND")  # another user's job
    status, _, refused = carol.request("POST", f"/api/results/{final['hash']}/export", b"{}")
    assert (status, refused["error"]) == (404, "ERROR_HASH_NOT_FOUND")  # another user's result
    status, _, refused = alice.request("POST", f"/api/results/{final['hash']}/export", b'{"conf_percentile": 101}')
    assert (status, refused["error"]) == (400, "ERROR_BAD_OPTIONS")

    # a re-export of the stored predictions: a new result, without the model
    options = json.dumps({"conf_percentile": 50, "mask_black_bg": True, "max_points": 1000}).encode()
    status, _, started = alice.request("POST", f"/api/results/{final['hash']}/export", options)
    assert status == 202, started
    exported = events_until_final(alice, started["id"])[-1]
    assert (exported["kind"], exported["state"]) == ("export", "done"), exported
    assert exported["hash"] != final["hash"] and 0 < exported["point_count"] <= 1000
    assert Browser(service.http_port).request("GET", f"/g/{exported['hash']}.glb")[2][:4] == b"glTF"
    listing = {r["hash"]: r for r in alice.request("GET", "/api/results")[2]["results"]}
    assert listing[final["hash"]]["predictions"] is True and listing[exported["hash"]]["predictions"] is False


def test_refusals_come_with_their_codes(service, alice, jpegs, video_bytes):
    anonymous = Browser(service.http_port)
    status, _, data = anonymous.upload("photos", jpegs[:1])
    assert (status, data["error"]) == (401, "ERROR_NOT_LOGGED_IN")
    status, _, data = alice.upload("photos", jpegs[:1], csrf=False)
    assert (status, data["error"]) == (403, "ERROR_CSRF")
    forged = Browser(service.http_port)
    forged.cookie, forged.csrf = alice.cookie, alice.csrf[:-2] + "AA"
    assert forged.upload("photos", jpegs[:1])[2]["error"] == "ERROR_CSRF"
    status, _, data = alice.upload("video", [video_bytes])
    assert (status, data["error"]) == (403, "ERROR_VIP_REQUIRED")
    status, _, data = alice.upload("photos", [b"x" * (MAX_PAYLOAD + 1)])
    assert (status, data["error"]) == (413, "ERROR_PAYLOAD_TOO_LARGE")
    status, _, data = alice.upload("photos", [jpegs[0]] * 21)  # frames.max_images is 20
    assert (status, data["error"]) == (400, "ERROR_TOO_MANY_IMAGES")
    body, content_type = multipart("photos", [])
    assert alice.request("POST", "/api/reconstructions", body, {"Content-Type": content_type})[0] == 400


def test_a_user_whose_tcp_uploads_fill_their_cap_is_busy_on_the_web_too(service, jpegs):
    """max_pending_per_user (10 in the suite) counted by the one admission the TCP server and the API share."""
    cap = service.args["proxy"]["max_pending_per_user"]
    carol = Browser(service.http_port)
    assert carol.login("carol")[0] == 200
    stop = threading.Event()
    with ExitStack() as stack:
        uploads = [stack.enter_context(Conn(service.port)) for _ in range(cap)]
        for conn in uploads:  # logins first: each takes a password check
            assert conn.login("carol", PASSWORD)[0] is True
        for conn in uploads:  # then every upload begins: admitted at its header
            conn.send(struct.pack(">BI", IMAGE, 1 << 20) + struct.pack(">II", 1, (1 << 20) - 8))

        def trickle() -> None:  # keep each upload under way (a silent one times out after read_timeout_s)
            while not stop.wait(0.3):
                for conn in uploads:
                    conn.send(b"\0")

        thread = threading.Thread(target=trickle, daemon=True)
        thread.start()
        try:
            status, headers, data = carol.upload("photos", jpegs[:1])
            assert (status, data["error"]) == (503, "ERROR_BUSY") and int(headers["retry-after"]) > 0
        finally:
            stop.set()
            thread.join()
