"""`WebApi`: the browser front's JSON API (docs/HTTP_API.md) as HTTP, over the TCP ingress's `WebAccess` calls.

This layer only speaks HTTP: it routes `/api/...`, reads the session cookie
and the CSRF header, bounds JSON bodies, streams uploads to the TCP ingress
and turns each call's answer into a response: an error `{"error", "message"}` with the status of
`serve_app.http.errors.STATUS`. Logins, sessions, uploads and jobs are the
TCP ingress's (`call`: `TCPIngress.web_call` in the app; a `WebAccess`'s
`call` in tests). Order of checks on a state-changing request: session
(401), then CSRF (403), then the body.

An upload is admitted by the TCP ingress from its Content-Length before a
byte of it is read (`upload_begin`, as an IMAGE/VIDEO header is), then
handed on in pieces of `UPLOAD_PIECE_BYTES` as they arrive (`upload_write`,
to the replica that admitted it: `route_to`), each within
`proxy.read_timeout_s` of the one before and the whole at the TCP path's
least upload rate (`proxy.upload_grace_s`, `proxy.min_upload_bytes_per_s`),
then `upload_finish` starts its job, whose id names that replica too, so
the job's status calls reach it (it alone knows the job's place in the
queue; another replica answers from the job's row if it is gone). It is parsed and written to disk
there; this replica holds one piece of it at a time. A body that ends
early, stalls or breaks off drops the upload there (`upload_abort`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from serve_app.config import AppSettings
from serve_app.http.errors import BadRequestError, CsrfError, http_status
from serve_app.storage.web_sessions import csrf_matches
from serve_app.web_jobs import owner_of_id
from tcp_proxy.deadlines import MinRate
from tcp_proxy.errors import IncompleteRequestError, PayloadTooLargeError, ReadTimeoutError, ServiceError
from tcp_proxy.proxy_protocol import is_trusted, parse_trusted

log = logging.getLogger(__name__)

COOKIE = "vggt_session"
CSRF_HEADER = "x-csrf-token"
NO_STORE = {"Cache-Control": "no-store"}
MAX_JSON_BYTES = 64 * 1024  # a login or export options body
UPLOAD_PIECE_BYTES = 1 << 20  # an upload goes on to the TCP ingress in pieces of this size (one handle call each)
RESULTS_LIMIT, RESULTS_MAX = 50, 200
EVENT_POLL_S = 0.5  # how often an event stream looks at its job
KEEP_ALIVE_S = 15.0
BUSY_RETRY_AFTER_S = 5
FINAL_STATES = ("done", "failed")
LOGIN_FIELDS = {"username", "password"}

Call = Callable[..., Awaitable[dict[str, Any]]]  # call(method, *args, route_to="") -> the answer dict


class WebApi:
    """The `/api/...` routes of the HTTP ingress."""

    def __init__(self, settings: AppSettings, call: Call) -> None:
        self._call = call
        self._max_payload = settings.proxy.max_payload_bytes
        self._read_timeout_s = settings.proxy.read_timeout_s
        self._upload_rate = MinRate.upload(settings.proxy)
        self._ttl_s = settings.web.session_ttl_s
        self._events_max_s = settings.web.events_max_s
        self._proxies = parse_trusted(settings.web.trusted_proxies)

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
                return answer(await self._call("job", _token(request), parts[1], route_to=owner_of_id(parts[1])))
            if parts[0] == "reconstructions" and len(parts) == 3 and parts[2] == "events" and method == "GET":
                return await self._events(request, parts[1])
            if method == "POST":
                return await self._changing(parts, request)
        except ServiceError as exc:
            return error_response(exc.code, exc.message)
        except Exception:  # the TCP ingress could not be reached, or failed: still a JSON answer
            log.exception("API call %s %s failed", method, path)
            return error_response("ERROR_INTERNAL", "internal error")
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
        """A multipart upload streamed to the TCP ingress that admitted it: its answer (the job id)."""
        declared = request.headers.get("content-length")
        if declared is None or not declared.isdigit():
            raise BadRequestError("send the upload with a Content-Length header")
        size = int(declared)
        if size > self._max_payload:
            raise PayloadTooLargeError(f"uploads are limited to {self._max_payload} bytes")
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary", b"").decode("latin-1")
        if content_type != b"multipart/form-data" or not boundary:
            raise BadRequestError("send the files as multipart/form-data")
        begun = await self._call("upload_begin", token, size, boundary)
        if is_error(begun):
            return begun
        upload_id = begun["upload"]
        owner = owner_of_id(upload_id)
        handed_on = False  # the upload is the ingress's to end: finished, or dropped after an error there
        try:
            async for piece in self._pieces(request, size):
                answered = await self._call("upload_write", upload_id, piece, route_to=owner)
                if is_error(answered):
                    handed_on = True
                    return answered
            handed_on = True
            return await self._call("upload_finish", upload_id, route_to=owner)
        finally:
            if not handed_on:
                await asyncio.shield(self._abort(upload_id, owner))

    async def _abort(self, upload_id: str, owner: str) -> None:
        try:
            await self._call("upload_abort", upload_id, route_to=owner)
        except Exception:  # its replica is gone (the upload with it) or cannot be reached: its idle timer ends it
            pass

    async def _pieces(self, request: Request, size: int) -> AsyncIterator[bytes]:
        """The body in pieces of UPLOAD_PIECE_BYTES (the last one shorter), each byte within the read
        timeout of the one before and on time for the least upload rate; ERROR_PAYLOAD_TOO_LARGE past
        its Content-Length, ERROR_INCOMPLETE_REQUEST when the client breaks off."""
        loop = asyncio.get_running_loop()
        started, received, buffered = loop.time(), 0, bytearray()
        stream = request.stream().__aiter__()
        while True:
            due = self._upload_rate.due(started, received + 1)
            wait_s = min(self._read_timeout_s, max(0.0, due - loop.time()))
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), wait_s)
            except StopAsyncIteration:
                break
            except asyncio.TimeoutError:
                raise ReadTimeoutError("the upload arrived too slowly") from None
            except ClientDisconnect:
                raise IncompleteRequestError("the upload broke off") from None
            received += len(chunk)
            if received > size:
                raise PayloadTooLargeError(f"the upload is longer than its Content-Length ({size} bytes)")
            buffered += chunk
            while len(buffered) >= UPLOAD_PIECE_BYTES:
                yield bytes(buffered[:UPLOAD_PIECE_BYTES])
                del buffered[:UPLOAD_PIECE_BYTES]
        if buffered:
            yield bytes(buffered)

    async def _events(self, request: Request, job_id: str) -> Response:
        token = _token(request)
        first = await self._call("job", token, job_id, route_to=owner_of_id(job_id))
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
            status = await self._call("job", token, job_id, route_to=owner_of_id(job_id))
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

