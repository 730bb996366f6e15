"""`WebApi`: the browser front's JSON API (docs/HTTP_API.md) as HTTP, over the TCP ingress's `WebAccess` calls.

This layer only speaks HTTP: it routes `/api/...`, reads the session cookie
and the CSRF header, bounds and parses bodies (JSON; multipart uploads with
`python-multipart`, counted against `proxy.max_payload_bytes` from
Content-Length and again while reading), and turns each call's answer into
a response: an error `{"error", "message"}` with the status of
`serve_app.http.errors.STATUS`. Logins, sessions, uploads and jobs are the
TCP ingress's (`call`: `TCPIngress.web_call` in the app; a `WebAccess`'s
`call` in tests). Order of checks on a state-changing request: session
(401), then CSRF (403), then the body.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from serve_app.config import AppSettings
from serve_app.http.errors import BadRequestError, CsrfError, http_status
from serve_app.storage.web_sessions import csrf_matches
from tcp_proxy.errors import BusyError, PayloadTooLargeError, ServiceError, TooManyImagesError
from tcp_proxy.proxy_protocol import is_trusted, parse_trusted

COOKIE = "vggt_session"
CSRF_HEADER = "x-csrf-token"
NO_STORE = {"Cache-Control": "no-store"}
MAX_JSON_BYTES = 64 * 1024  # a login or export options body
RESULTS_LIMIT, RESULTS_MAX = 50, 200
EVENT_POLL_S = 0.5  # how often an event stream looks at its job
KEEP_ALIVE_S = 15.0
BUSY_RETRY_AFTER_S = 5
FINAL_STATES = ("done", "failed")
LOGIN_FIELDS = {"username", "password"}

Call = Callable[..., Awaitable[dict[str, Any]]]  # call(method, *args) -> the answer dict


class WebApi:
    """The `/api/...` routes of the HTTP ingress."""

    def __init__(self, settings: AppSettings, call: Call) -> None:
        self._call = call
        self._max_payload = settings.proxy.max_payload_bytes
        self._max_files = settings.frames.max_images + 1  # one more reads as ERROR_TOO_MANY_IMAGES
        self._ttl_s = settings.web.session_ttl_s
        self._events_max_s = settings.web.events_max_s
        self._proxies = parse_trusted(settings.web.trusted_proxies)
        self._max_in_flight = settings.web.max_upload_bytes_in_flight
        self.upload_bytes_in_flight = 0  # declared by the uploads this replica is receiving now

    async def handle(self, path: str, request: Request) -> Response:
        parts, method = path.strip("/").split("/"), request.method
        try:
            if parts == ["login"] and method == "POST":
                return await self._login(request)
            if parts == ["session"] and method == "GET":
                return answer(await self._call("session", _token(request)))
            if parts == ["results"] and method == "GET":
                return answer(await self._call("results", _token(request), _limit(request)))
            if parts[0] == "reconstructions" and len(parts) == 2 and method == "GET":
                return answer(await self._call("job", _token(request), parts[1]))
            if parts[0] == "reconstructions" and len(parts) == 3 and parts[2] == "events" and method == "GET":
                return await self._events(request, parts[1])
            if method == "POST":
                return await self._changing(parts, request)
        except ServiceError as exc:
            return error_response(exc.code, exc.message)
        return error_response("ERROR_NOT_FOUND", "no such API endpoint")

    async def _changing(self, parts: list[str], request: Request) -> Response:
        """A state-changing request: session, then CSRF, then the body."""
        token = _token(request)
        session = await self._call("session", token)
        if is_error(session):
            return answer(session)
        if not csrf_matches(token, request.headers.get(CSRF_HEADER)):
            raise CsrfError("missing or wrong X-CSRF-Token header")
        if parts == ["logout"]:
            answered = await self._call("logout", token)
            if is_error(answered):
                return answer(answered)
            response = Response(status_code=204, headers=NO_STORE)
            response.delete_cookie(COOKIE, path="/", secure=self._secure(request), httponly=True, samesite="strict")
            return response
        if parts == ["reconstructions"]:
            return answer(await self._submit(request, token), status=202)
        if len(parts) == 3 and parts[0] == "results" and parts[2] == "export":
            options = await _json_body(request)
            return answer(await self._call("export", token, parts[1], options), status=202)
        return error_response("ERROR_NOT_FOUND", "no such API endpoint")

    async def _login(self, request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or set(body) != LOGIN_FIELDS or not all(isinstance(v, str) for v in body.values()):
            raise BadRequestError('send {"username": ..., "password": ...}')
        answered = await self._call("login", body["username"], body["password"], self.client_address(request))
        if is_error(answered):
            return answer(answered)
        token = answered.pop("token")
        response = JSONResponse(answered, headers=NO_STORE)
        response.set_cookie(
            COOKIE, token, max_age=int(self._ttl_s), path="/", secure=self._secure(request), httponly=True, samesite="strict"
        )
        return response

    def client_address(self, request: Request) -> str:
        """The client's address: the peer's, or, when the peer is a trusted proxy, the nearest address of
        X-Forwarded-For that is not a trusted proxy (entries further left are the client's own word)."""
        address = request.client.host if request.client else ""
        if not address or not is_trusted(address, self._proxies):
            return address
        hops = [hop.strip() for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")]
        for hop in reversed([hop for hop in hops if hop]):
            if not is_trusted(hop, self._proxies):
                return hop
        return address

    def _secure(self, request: Request) -> bool:
        """Whether the request came over TLS: here, or to a trusted proxy that says so."""
        if request.url.scheme == "https":
            return True
        client = request.client.host if request.client else ""
        forwarded = request.headers.get("x-forwarded-proto", "").strip().lower()
        return forwarded == "https" and bool(client) and is_trusted(client, self._proxies)

    async def _submit(self, request: Request, token: str) -> dict[str, Any]:
        """A multipart upload read within the payload limit and handed to the TCP ingress: its answer.

        Its bytes are counted in `upload_bytes_in_flight` from its Content-Length until the ingress has
        them (they are held in this replica's memory meanwhile)."""
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit():
            raise BadRequestError("send the upload with a Content-Length header")
        size = int(declared)
        if size > self._max_payload:
            raise PayloadTooLargeError(f"uploads are limited to {self._max_payload} bytes")
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise BadRequestError("send the files as multipart/form-data")
        if self.upload_bytes_in_flight + size > self._max_in_flight:
            raise BusyError("too many uploads are being received; try again shortly")
        self.upload_bytes_in_flight += size
        try:
            kind, files = await self._parse_upload(request, size)
            return await self._call("submit", token, kind, files)
        finally:
            self.upload_bytes_in_flight -= size

    async def _parse_upload(self, request: Request, size: int) -> tuple[str, list[bytes]]:
        """("photos" | "video", the files' bytes) of a multipart body of `size` bytes."""
        parser = MultiPartParser(request.headers, self._bounded(request, size), max_files=self._max_files, max_fields=0)
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            if "files" in exc.message.lower():
                raise TooManyImagesError(exc.message) from None
            raise BadRequestError(exc.message) from None
        try:
            names = {name for name, _ in form.multi_items()}
            values = [value for _, value in form.multi_items()]
            if not names or not names <= {"photos", "video"} or len(names) > 1:
                raise BadRequestError("send files in field photos, or one in field video")
            if not all(isinstance(value, UploadFile) for value in values):
                raise BadRequestError("only files are accepted")
            return names.pop(), [await value.read() for value in values]  # type: ignore[union-attr]
        finally:
            await form.close()

    async def _bounded(self, request: Request, size: int) -> AsyncIterator[bytes]:
        """The body, refused (ERROR_PAYLOAD_TOO_LARGE) once it passes its declared `size`."""
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > size:
                raise PayloadTooLargeError(f"the upload is longer than its Content-Length ({size} bytes)")
            yield chunk

    async def _events(self, request: Request, job_id: str) -> Response:
        token = _token(request)
        first = await self._call("job", token, job_id)
        if is_error(first):
            return answer(first)
        return StreamingResponse(
            self._event_stream(request, token, job_id, first),
            media_type="text/event-stream",
            headers={**NO_STORE, "X-Accel-Buffering": "no"},
        )

    async def _event_stream(self, request: Request, token: str, job_id: str, status: dict) -> AsyncIterator[bytes]:
        """The job's status now and at every change, keep-alive comments, until done/failed or the bounded lifetime."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self._events_max_s
        yield _event(status)
        last_sent, last = loop.time(), status
        while last.get("state") not in FINAL_STATES and loop.time() < end:
            await asyncio.sleep(EVENT_POLL_S)
            if await request.is_disconnected():
                return
            status = await self._call("job", token, job_id)
            if is_error(status):
                return  # logged out or expired meanwhile: the page reconnects and reads the 401
            if status != last:
                yield _event(status)
                last_sent, last = loop.time(), status
            elif loop.time() - last_sent >= KEEP_ALIVE_S:
                yield b": keep-alive\n\n"
                last_sent = loop.time()


def answer(body: dict[str, Any], status: int = 200) -> Response:
    """A call's answer as a response: its error with the code's status, else `body` with `status`."""
    if is_error(body):
        return error_response(body["error"], body.get("message") or body["error"])
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def is_error(body: dict[str, Any]) -> bool:
    """Whether a call answered an error (a job's status has an `error` field of its own, and more)."""
    return set(body) == {"error", "message"}


def error_response(code: str, message: str) -> Response:
    headers = dict(NO_STORE)
    if code == "ERROR_BUSY":
        headers["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return JSONResponse({"error": code, "message": message}, status_code=http_status(code), headers=headers)


def _token(request: Request) -> str:
    return request.cookies.get(COOKIE, "")


def _limit(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return RESULTS_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= RESULTS_MAX:
        raise BadRequestError(f"limit must be an integer from 1 to {RESULTS_MAX}")
    return int(text)


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise PayloadTooLargeError("the request body is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise PayloadTooLargeError("the request body is too large")
    try:
        return json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("the body is not JSON") from None


def _event(status: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(status, separators=(",", ":")).encode() + b"\n\n"

