"""`WebApi`, the HTTP layer alone: routing, cookie flags, check order, body limits, multipart, event streams.

Requests go through a real Starlette app (ASGI messages, no network); the
TCP ingress's calls are a stand-in that records them, so these tests pin
what the HTTP layer does with their answers.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from serve_app.config import AppSettings
from serve_app.http import api as api_module
from serve_app.http.api import COOKIE, WebApi
from serve_app.storage.web_sessions import csrf_token

TOKEN = "t" * 43
MAX_PAYLOAD = 1000
STATUS = {"id": "j" * 32, "kind": "photos", "state": "decoding", "position": None, "estimated_wait_s": None,
          "hash": None, "point_count": None, "error": None, "message": None}


class Ingress:
    """Stands in for `TCPIngress.web_call`: a session for TOKEN, canned answers, every call recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.states = ["decoding", "inferring", "done"]

    async def __call__(self, method: str, *args):
        self.calls.append((method, *args))
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
        if method == "submit":
            return {"id": "j" * 32}
        return {}


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
            csrf: bool = True, scheme: str = "http", send_body: bool = True):
    """(status, headers, body parts) of one request through the ASGI app."""
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
    messages = [{"type": "http.request", "body": body if send_body else b"", "more_body": False}]
    out: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
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


def multipart(fields: list[tuple[str, bytes | str]]) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in fields:
        if isinstance(value, bytes):
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x.jpg"\r\n\r\n'
            body += head.encode() + value + b"\r\n"
        else:
            body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


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
    assert ingress.calls[-1] == ("submit", TOKEN, "photos", [b"a" * 10, b"b" * 20])
    status, _, parts = request(app, "POST", "/api/reconstructions", b"", {**headers, "content-length": str(MAX_PAYLOAD + 1)},
                               send_body=False)
    assert (status, json_of(parts)["error"]) == (413, "ERROR_PAYLOAD_TOO_LARGE")  # from the header, unread
    over, over_headers = multipart([("photos", b"x" * MAX_PAYLOAD)])
    status, _, parts = request(app, "POST", "/api/reconstructions", over, {**over_headers, "content-length": "10"})
    assert (status, json_of(parts)["error"]) == (413, "ERROR_PAYLOAD_TOO_LARGE")  # counted while reading
    for fields in ([("photos", b"a"), ("video", b"v")], [("photos", b"a"), ("note", "hi")], [("other", b"a")], []):
        body, headers = multipart(fields)
        status, _, parts = request(app, "POST", "/api/reconstructions", body, headers)
        assert (status, json_of(parts)["error"]) == (400, "ERROR_BAD_REQUEST"), fields
    body, headers = multipart([("photos", b"a")] * 4)  # over max_images (2) + 1: the parser stops it
    status, _, parts = request(app, "POST", "/api/reconstructions", body, headers)
    assert (status, json_of(parts)["error"]) == (400, "ERROR_TOO_MANY_IMAGES")
    assert sum(c[0] == "submit" for c in ingress.calls) == 1


def test_a_job_status_with_its_null_error_is_a_200_and_results_limits_are_checked():
    ingress = Ingress()
    app = app_for(ingress)
    status, headers, parts = request(app, "GET", f"/api/reconstructions/{'j' * 32}")
    assert status == 200 and json_of(parts)["error"] is None and headers["cache-control"] == "no-store"
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


def test_uploads_being_received_are_bounded_by_their_declared_bytes_until_the_ingress_has_them():
    body, headers = multipart([("photos", b"a" * 100)])
    held = []

    class Holding(Ingress):
        async def __call__(self, method, *args):
            if method == "submit":
                held.append(api.upload_bytes_in_flight)  # still counted while handed on
            return await super().__call__(method, *args)

    ingress = Holding()
    api = api_for(ingress, max_upload_bytes_in_flight=len(body))  # at the bound: received
    status, _, _ = request(app_of(api), "POST", "/api/reconstructions", body, headers)
    assert status == 202 and held == [len(body)] and api.upload_bytes_in_flight == 0
    api = api_for(ingress, max_upload_bytes_in_flight=len(body) - 1)  # one byte over: refused unread
    status, out_headers, parts = request(app_of(api), "POST", "/api/reconstructions", body, headers)
    assert (status, json_of(parts)["error"], out_headers["retry-after"]) == (503, "ERROR_BUSY", "5")
    assert held == [len(body)] and api.upload_bytes_in_flight == 0
    api = api_for(ingress)
    status, _, parts = request(app_of(api), "POST", "/api/reconstructions", body, {**headers, "content-length": None})
    assert (status, json_of(parts)["error"]) == (400, "ERROR_BAD_REQUEST")  # no Content-Length: nothing to count
    bad, bad_headers = multipart([("other", b"a")])
    status, _, _ = request(app_of(api), "POST", "/api/reconstructions", bad, bad_headers)
    assert status == 400 and api.upload_bytes_in_flight == 0  # given back on an error too


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
