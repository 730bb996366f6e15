"""`WebApi`, the HTTP layer alone: routing, cookie flags, check order, body limits, multipart, event streams.

Requests go through a real Starlette app (ASGI messages, no network); the
TCP ingress's calls are a stand-in that records them, so these tests pin
what the HTTP layer does with their answers.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from serve_app.config import AppSettings
from serve_app.http import api as api_module
from serve_app.http.api import COOKIE, WebApi
from serve_app.storage.web_sessions import csrf_token
from serve_app.web_upload import MultipartUpload
from multipart_body import multipart
from tcp_proxy.errors import ServiceError
from tcp_proxy.spool import Spool

TOKEN = "t" * 43
OWNER = "r7"  # the TCP ingress replica receiving the uploads
MAX_PAYLOAD = 1000
STATUS = {"id": "j" * 32, "kind": "photos", "state": "decoding", "position": None, "estimated_wait_s": None,
          "hash": None, "point_count": None, "error": None, "message": None}


class Ingress:
    """Stands in for `TCPIngress.web_call`: a session for TOKEN, canned answers, every call recorded; uploads
    are received as the TCP ingress receives them (a real `MultipartUpload` over a real spool file)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.routes: list[str] = []
        self.states = ["decoding", "inferring", "done"]
        self.busy = False
        self.upload: MultipartUpload | None = None
        self.files: list[bytes] | None = None  # the photos of the last finished upload
        self.aborted = 0
        self.spool_dir = Path(tempfile.mkdtemp(prefix="api-spool-"))

    async def __call__(self, method: str, *args, route_to: str = ""):
        self.calls.append((method, *args))
        self.routes.append(route_to)
        if method in ("upload_write", "upload_finish", "upload_abort"):
            return await self._receive(method, *args)
        if method == "login":
            if args[1] != "right":
                return {"error": "ERROR_LOGIN_FAILED", "message": "no"}
            return {"token": TOKEN, "csrf_token": csrf_token(TOKEN), "username": args[0], "is_vip": False}
        if args[0] != TOKEN:
            return {"error": "ERROR_NOT_LOGGED_IN", "message": "log in first"}
        if method == "session":
            return {"csrf_token": csrf_token(TOKEN), "username": "alice", "is_vip": False}
        if method == "job":
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return {**STATUS, "state": state}
        if method == "upload_begin":
            if self.busy:
                return {"error": "ERROR_BUSY", "message": "busy"}
            _, size, boundary = args
            spool = Spool(self.spool_dir, ".upload")
            self.upload = MultipartUpload(boundary, size, spool, max_images=2, video_allowed=False)
            return {"upload": f"{OWNER}.{uuid.uuid4().hex}"}
        return {}

    async def _receive(self, method: str, upload_id: str, *args):
        assert upload_id.startswith(OWNER + ".")
        if method == "upload_abort":
            self.aborted += 1
            self._drop()
            return {}
        try:
            if method == "upload_write":
                await self.upload.feed(args[0])
                return {}
            await self.upload.finish()
            self.files = [bytes(view) for view in self.upload.spool.map_parts(self.upload.sizes)]
            self._drop()
            return {"id": "j" * 32}
        except ServiceError as exc:
            self._drop()
            return {"error": exc.code, "message": exc.message}

    def _drop(self) -> None:
        if self.upload is not None:
            self.upload.spool.discard()
            self.upload = None

    def writes(self) -> list[bytes]:
        return [call[2] for call in self.calls if call[0] == "upload_write"]


def app_for(ingress: Ingress, **web) -> Starlette:
    return app_of(api_for(ingress, **web))


def api_for(ingress: Ingress, **web) -> WebApi:
    settings = AppSettings.from_dict({"proxy": {"max_payload_bytes": MAX_PAYLOAD}, "frames": {"max_images": 2}, "web": web})
    return WebApi(settings, ingress)


def app_of(api: WebApi) -> Starlette:

    async def route(request):
        return await api.handle(request.path_params["path"], request)

    return Starlette(routes=[Route("/api/{path:path}", route, methods=["GET", "POST"])])


def request(app, method: str, path: str, body: bytes = b"", headers: dict | None = None, *, session: bool = True,
            csrf: bool = True, scheme: str = "http", send_body: bool = True, pieces: list[bytes] | None = None,
            then: str = "wait"):
    """(status, headers, body parts) of one request through the ASGI app. The body is sent as one message, or
    as the messages `pieces`; after it the client waits (`then="wait"`) or disconnects (`then="disconnect"`)."""
    sent = {k.lower(): v for k, v in (headers or {}).items()}
    if session:
        sent["cookie"] = f"{COOKIE}={TOKEN}"
    if csrf:
        sent["x-csrf-token"] = csrf_token(TOKEN)
    sent.setdefault("content-length", str(len(body)))
    if sent["content-length"] is None:  # a request without the header
        del sent["content-length"]
    path, _, query = path.partition("?")
    scope = {"type": "http", "http_version": "1.1", "method": method, "scheme": scheme, "path": path,
             "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(k.encode(), v.encode()) for k, v in sent.items()],
             "client": ("192.0.2.7", 1234), "server": ("127.0.0.1", 8000)}
    if pieces is None:
        messages = [{"type": "http.request", "body": body if send_body else b"", "more_body": False}]
    else:
        messages = [{"type": "http.request", "body": piece, "more_body": True} for piece in pieces]
        if then == "end":
            messages.append({"type": "http.request", "body": b"", "more_body": False})
    out: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        if then == "disconnect":
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)

    async def send(message):
        out.append(message)

    async def run():
        await asyncio.wait_for(app(scope, receive, send), 30)

    asyncio.run(run())
    start = out[0]
    headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
    parts = [m.get("body", b"") for m in out[1:]]
    return start["status"], headers_out, parts


def json_of(parts) -> dict:
    return json.loads(b"".join(parts))


def test_login_sets_the_cookie_with_its_flags_and_refuses_other_bodies():
    ingress = Ingress()
    app = app_for(ingress, session_ttl_s=120)
    body = json.dumps({"username": "alice", "password": "right"}).encode()
    status, headers, parts = request(app, "POST", "/api/login", body, session=False, csrf=False)
    assert status == 200 and json_of(parts) == {"csrf_token": csrf_token(TOKEN), "username": "alice", "is_vip": False}
    cookie = [p.strip() for p in headers["set-cookie"].split(";")]
    assert cookie[0] == f"{COOKIE}={TOKEN}" and {"HttpOnly", "SameSite=strict", "Path=/", "Max-Age=120"} <= set(cookie)
    assert "Secure" not in cookie
    assert ingress.calls[-1] == ("login", "alice", "right", "192.0.2.7")  # throttled by the client's address
    _, headers, _ = request(app, "POST", "/api/login", body, session=False, csrf=False, scheme="https")
    assert "Secure" in [p.strip() for p in headers["set-cookie"].split(";")]
    wrong = json.dumps({"username": "alice", "password": "wrong"}).encode()
    status, _, parts = request(app, "POST", "/api/login", wrong, session=False, csrf=False)
    assert (status, json_of(parts)["error"]) == (401, "ERROR_LOGIN_FAILED")
    for bad in (b"{", b"[]", b'{"username": "a"}', b'{"username": "a", "password": "b", "x": 1}', b'{"username": 1, "password": "b"}'):
        status, _, parts = request(app, "POST", "/api/login", bad, session=False, csrf=False)
        assert (status, json_of(parts)["error"]) == (400, "ERROR_BAD_REQUEST"), bad


def test_the_session_is_checked_before_csrf_and_csrf_before_the_body():
    ingress = Ingress()
    app = app_for(ingress)
    status, _, parts = request(app, "POST", "/api/reconstructions", b"junk", session=False, csrf=False)
    assert (status, json_of(parts)["error"]) == (401, "ERROR_NOT_LOGGED_IN")
    status, _, parts = request(app, "POST", "/api/reconstructions", b"junk", csrf=False)
    assert (status, json_of(parts)["error"]) == (403, "ERROR_CSRF")
    status, _, parts = request(app, "POST", "/api/reconstructions", b"junk", {"X-CSRF-Token": "forged"}, csrf=False)
    assert (status, json_of(parts)["error"]) == (403, "ERROR_CSRF")
    assert [c[0] for c in ingress.calls] == ["session", "session", "session"]  # nothing submitted
    status, headers, _ = request(app, "POST", "/api/logout")
    assert status == 204 and headers["set-cookie"].startswith(f'{COOKIE}=""') and "Max-Age=0" in headers["set-cookie"]


def test_uploads_are_bounded_by_the_payload_limit_and_must_be_files_of_one_field():
    ingress = Ingress()
    app = app_for(ingress)
    body, headers = multipart([("photos", b"a" * 10), ("photos", b"b" * 20)])
    status, _, parts = request(app, "POST", "/api/reconstructions", body, headers)
    assert (status, json_of(parts)) == (202, {"id": "j" * 32})
    assert ingress.files == [b"a" * 10, b"b" * 20]  # received whole by the ingress's parser
    begin = [call for call in ingress.calls if call[0] == "upload_begin"]
    assert begin == [("upload_begin", TOKEN, len(body), headers["content-type"].split("=", 1)[1])]
    assert {route for call, route in zip(ingress.calls, ingress.routes) if call[0].startswith("upload_")} == {"", OWNER}
    status, _, parts = request(app, "POST", "/api/reconstructions", b"", {**headers, "content-length": str(MAX_PAYLOAD + 1)},
                               send_body=False)
    assert (status, json_of(parts)["error"]) == (413, "ERROR_PAYLOAD_TOO_LARGE")  # from the header, unread
    assert len([call for call in ingress.calls if call[0] == "upload_begin"]) == 1  # never admitted
    over, over_headers = multipart([("photos", b"x" * 100)])
    status, _, parts = request(app, "POST", "/api/reconstructions", over, {**over_headers, "content-length": "10"})
    assert (status, json_of(parts)["error"]) == (413, "ERROR_PAYLOAD_TOO_LARGE")  # counted while reading
    assert ingress.aborted == 1 and ingress.upload is None  # dropped at the ingress
    for fields in ([("photos", b"a"), ("video", b"v")], [("photos", b"a"), ("note", "hi")], [("other", b"a")], []):
        body, headers = multipart(fields)
        status, _, parts = request(app, "POST", "/api/reconstructions", body, headers)
        assert (status, json_of(parts)["error"]) == (400, "ERROR_BAD_REQUEST"), fields
    body, headers = multipart([("photos", b"a")] * 3)  # over max_images (2)
    status, _, parts = request(app, "POST", "/api/reconstructions", body, headers)
    assert (status, json_of(parts)["error"]) == (400, "ERROR_TOO_MANY_IMAGES")
    for content_type in ("multipart/form-data", "application/octet-stream; boundary=b", "text/plain"):
        status, _, parts = request(app, "POST", "/api/reconstructions", body, {"content-type": content_type})
        assert (status, json_of(parts)["error"]) == (400, "ERROR_BAD_REQUEST"), content_type
    status, _, parts = request(app, "POST", "/api/reconstructions", body, {**headers, "content-length": None})
    assert (status, json_of(parts)["error"]) == (400, "ERROR_BAD_REQUEST")  # no Content-Length: nothing to admit by
    assert len([call for call in ingress.calls if call[0] == "upload_begin"]) == 7
    assert not [path for path in ingress.spool_dir.iterdir()]  # no upload left a file


def test_a_job_status_with_its_null_error_is_a_200_and_results_limits_are_checked():
    ingress = Ingress()
    app = app_for(ingress)
    status, headers, parts = request(app, "GET", f"/api/reconstructions/{'j' * 32}")
    assert status == 200 and json_of(parts)["error"] is None and headers["cache-control"] == "no-store"
    request(app, "GET", f"/api/reconstructions/{OWNER}.{'j' * 32}")
    request(app, "GET", f"/api/reconstructions/{OWNER}.{'j' * 32}/events")
    assert ingress.routes == ["", OWNER, OWNER]  # a job's calls go to the replica running it (the stream: done at once)
    for limit in ("0", "201", "x", "-1"):
        status, _, parts = request(app, "GET", f"/api/results?limit={limit}")
        assert (status, json_of(parts)["error"]) == (400, "ERROR_BAD_REQUEST"), limit
    request(app, "GET", "/api/results?limit=200")
    request(app, "GET", "/api/results")
    assert [c for c in ingress.calls if c[0] == "results"] == [("results", TOKEN, 200), ("results", TOKEN, 50)]
    assert request(app, "GET", "/api/nothing")[0] == 404


def test_the_event_stream_sends_each_change_keep_alives_and_ends_at_done(monkeypatch):
    monkeypatch.setattr(api_module, "EVENT_POLL_S", 0.01)
    monkeypatch.setattr(api_module, "KEEP_ALIVE_S", 0.0)  # a keep-alive whenever nothing changed
    ingress = Ingress()
    ingress.states = ["decoding", "decoding", "inferring", "done"]
    status, headers, parts = request(app_for(ingress), "GET", f"/api/reconstructions/{'j' * 32}/events")
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [json.loads(p[len(b"data: "):]) for p in parts if p.startswith(b"data: ")]
    assert [e["state"] for e in events] == ["decoding", "inferring", "done"]
    assert b": keep-alive\n\n" in parts and parts[-1] == b""


def test_the_event_stream_ends_after_its_lifetime():
    ingress = Ingress()
    ingress.states = ["decoding"]  # never changes
    status, _, parts = request(app_for(ingress, events_max_s=0.2), "GET", f"/api/reconstructions/{'j' * 32}/events")
    assert status == 200 and [p for p in parts if p.startswith(b"data: ")] == [parts[0]]


@pytest.mark.parametrize("path", ["/api/reconstructions/unknown", "/api/reconstructions/unknown/events"])
def test_a_status_without_a_session_is_401(path):
    status, _, parts = request(app_for(Ingress()), "GET", path, session=False)
    assert (status, json_of(parts)["error"]) == (401, "ERROR_NOT_LOGGED_IN")


def test_an_upload_goes_on_in_pieces_to_the_replica_that_admitted_it(monkeypatch):
    monkeypatch.setattr(api_module, "UPLOAD_PIECE_BYTES", 16)
    ingress = Ingress()
    body, headers = multipart([("photos", b"a" * 40), ("photos", b"b" * 30)])
    cuts = [body[:5], body[5:50], body[50:51], body[51:]]  # as the client's packets arrive
    status, _, parts = request(app_for(ingress), "POST", "/api/reconstructions", b"", {**headers, "content-length": str(len(body))},
                               pieces=cuts, then="end")
    assert (status, json_of(parts)) == (202, {"id": "j" * 32})
    writes = ingress.writes()
    assert b"".join(writes) == body and all(len(w) == 16 for w in writes[:-1]) and 0 < len(writes[-1]) <= 16
    assert ingress.files == [b"a" * 40, b"b" * 30]
    routes = [route for call, route in zip(ingress.calls, ingress.routes) if call[0] in ("upload_write", "upload_finish")]
    assert routes == [OWNER] * (len(writes) + 1)  # every piece to the replica holding the upload


def test_a_busy_service_refuses_an_upload_before_reading_its_body():
    ingress = Ingress()
    ingress.busy = True
    body, headers = multipart([("photos", b"a" * 100)])
    status, out_headers, parts = request(app_for(ingress), "POST", "/api/reconstructions", b"", {**headers, "content-length": str(len(body))},
                                         pieces=[], then="wait")  # the body never comes: it is not waited for
    assert (status, json_of(parts)["error"], out_headers["retry-after"]) == (503, "ERROR_BUSY", "5")
    assert [call[0] for call in ingress.calls] == ["session", "upload_begin"]


def test_an_upload_that_breaks_off_or_stalls_is_dropped_at_the_ingress():
    ingress = Ingress()
    app = app_of(WebApi(AppSettings.from_dict({"proxy": {"read_timeout_s": 0.2, "max_payload_bytes": MAX_PAYLOAD}}), ingress))
    body, headers = multipart([("photos", b"a" * 100)])
    declared = {**headers, "content-length": str(len(body))}
    status, _, parts = request(app, "POST", "/api/reconstructions", b"", declared, pieces=[body[:60]], then="disconnect")
    assert (status, json_of(parts)["error"]) == (400, "ERROR_INCOMPLETE_REQUEST")
    assert ingress.aborted == 1 and ingress.upload is None
    status, _, parts = request(app, "POST", "/api/reconstructions", b"", declared, pieces=[body[:60]], then="wait")
    assert (status, json_of(parts)["error"]) == (408, "ERROR_READ_TIMEOUT")  # silent past proxy.read_timeout_s
    assert ingress.aborted == 2 and ingress.upload is None
    status, _, parts = request(app, "POST", "/api/reconstructions", b"", declared, pieces=[body[:-1]], then="end")
    assert (status, json_of(parts)["error"]) == (400, "ERROR_INCOMPLETE_REQUEST")  # ended short of its Content-Length
    assert not list(ingress.spool_dir.iterdir())


def test_a_failing_ingress_call_is_still_a_json_error():
    class Broken(Ingress):
        async def __call__(self, method, *args, route_to=""):
            if method == "upload_write":
                raise RuntimeError("the replica died")
            return await super().__call__(method, *args, route_to=route_to)

    ingress = Broken()
    body, headers = multipart([("photos", b"a")])
    status, _, parts = request(app_for(ingress), "POST", "/api/reconstructions", body, headers)
    assert (status, json_of(parts)["error"]) == (500, "ERROR_INTERNAL")
    assert ingress.calls[-1][0] == "upload_abort"  # tried to drop it there (its idle timer is the backstop)


@pytest.mark.parametrize(
    ("trusted", "forwarded", "address"),
    [
        ("", "203.0.113.9", "192.0.2.7"),  # an untrusted peer's header is the client's own word
        ("192.0.2.0/24", None, "192.0.2.7"),  # a trusted peer that forwards nothing
        ("192.0.2.0/24", "203.0.113.9", "203.0.113.9"),
        ("192.0.2.0/24", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the left entry is made up by the client
        ("192.0.2.0/24", "203.0.113.9, 192.0.2.50", "203.0.113.9"),  # a chain of trusted proxies is skipped
        ("192.0.2.0/24", "192.0.2.50", "192.0.2.7"),  # only proxies: the peer
    ],
)
def test_logins_are_throttled_by_the_client_address_a_trusted_proxy_forwards(trusted, forwarded, address):
    ingress = Ingress()
    body = json.dumps({"username": "alice", "password": "right"}).encode()
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    status, _, _ = request(app_for(ingress, trusted_proxies=trusted), "POST", "/api/login", body, headers,
                           session=False, csrf=False)
    assert status == 200 and ingress.calls[-1] == ("login", "alice", "right", address)
