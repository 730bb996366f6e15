"""`WebAccess`: the HTTP API's entry points in the TCP ingress replica, each checking its browser session first.

`TCPIngress` holds one and answers the HTTP ingress's calls with it
(`TCPIngress.web_call`), so logins, sessions, uploads and their jobs use
the same `Accounts` (throttle, scrypt, account re-checks) and the same TCP
server (admission, spool, backend) as the protocol. Every method answers a
plain dict: the result, or `{"error": code, "message": text}` (nothing is
raised across the Ray call); `serve_app.http.api` turns the code into the
HTTP status. A session that is unknown, expired, logged out, of a disabled
account or older than its password change is `ERROR_NOT_LOGGED_IN`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from serve_app.accounts import Accounts
from serve_app.http.errors import LoginFailedError, NotFoundError
from serve_app.storage.web_results import WebResult
from serve_app.storage.web_sessions import csrf_token
from serve_app.web_jobs import WebJobRunner
from tcp_proxy.backend import User
from tcp_proxy.errors import NotLoggedInError, ServiceError

log = logging.getLogger(__name__)

# what web_call may call
METHODS = ("login", "session", "logout", "upload_begin", "upload_write", "upload_finish", "upload_abort", "job", "results", "export")


def error(exc: ServiceError) -> dict[str, str]:
    return {"error": exc.code, "message": exc.message}


def session_body(user: User, token: str) -> dict[str, Any]:
    """What a login and GET /api/session answer: the CSRF token, who, VIP now."""
    return {"csrf_token": csrf_token(token), "username": user.username, "is_vip": bool(user.is_vip)}


def result_body(result: WebResult) -> dict[str, Any]:
    created = None if result.created_at is None else result.created_at.isoformat(timespec="seconds") + "Z"
    return {
        "hash": result.hashed_name,
        "name": result.name,
        "size": result.size,
        "created_at": created,
        "point_count": result.point_count,
        "predictions": result.predictions,
    }


class WebAccess:
    """Session-checked calls over one `Accounts` and one `WebJobRunner`."""

    def __init__(self, accounts: Accounts, runner: WebJobRunner) -> None:
        self._accounts = accounts
        self._runner = runner

    async def call(self, method: str, *args: Any, route_to: str = "") -> dict[str, Any]:
        """`method(*args)` for a name of METHODS; ERROR_NOT_FOUND for any other name. (`route_to` picks
        the replica that answers, in the app: `serve_app.deployments.owner_router`.)"""
        if method not in METHODS:
            return error(NotFoundError(f"no such call {method!r}"))
        return await getattr(self, method)(*args)

    async def login(self, username: str, password: str, address: str) -> dict[str, Any]:
        try:
            found = await self._accounts.web_login(username, password, address)
        except ServiceError as exc:  # BusyError: the login queue is full
            return error(exc)
        if found is None:
            return error(LoginFailedError("wrong username or password"))
        user, token = found
        return {"token": token, **session_body(user, token)}

    async def session(self, token: str) -> dict[str, Any]:
        return await self._as_user(token, lambda user: _now(session_body(user, token)))

    async def logout(self, token: str) -> dict[str, Any]:
        async def end(_user: User) -> dict[str, Any]:
            await self._accounts.web_logout(token)
            return {}

        return await self._as_user(token, end)

    async def upload_begin(self, token: str, size: int, boundary: str) -> dict[str, Any]:
        """Admit an upload of `size` bytes for the session's user: `{"upload": id}`, its later calls' key."""

        async def begin(user: User) -> dict[str, Any]:
            return {"upload": await self._runner.begin(user, size, boundary)}

        return await self._as_user(token, begin)

    # An upload id is known only to the HTTP ingress that began it with a valid session: the calls
    # below take it alone (no session lookup per piece).

    async def upload_write(self, upload_id: str, piece: bytes) -> dict[str, Any]:
        return await _answering(self._runner.receive(upload_id, piece), lambda _: {})

    async def upload_finish(self, upload_id: str) -> dict[str, Any]:
        return await _answering(self._runner.finish(upload_id), lambda job_id: {"id": job_id})

    async def upload_abort(self, upload_id: str) -> dict[str, Any]:
        self._runner.abort(upload_id)
        return {}

    async def job(self, token: str, job_id: str) -> dict[str, Any]:
        async def read(user: User) -> dict[str, Any]:
            status = await self._runner.status(user, job_id)
            if status is None:
                raise NotFoundError("no such job")
            return status

        return await self._as_user(token, read)

    async def results(self, token: str, limit: int) -> dict[str, Any]:
        async def listing(user: User) -> dict[str, Any]:
            return {"results": [result_body(r) for r in await self._accounts.web_results(user, limit)]}

        return await self._as_user(token, listing)

    async def export(self, token: str, hashed_name: str, options: Any) -> dict[str, Any]:
        async def start(user: User) -> dict[str, Any]:
            return {"id": await self._runner.export(user, hashed_name, options)}

        return await self._as_user(token, start)

    async def _as_user(self, token: str, then: Callable[[User], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        async def checked() -> dict[str, Any]:
            user = await self._accounts.web_user(token)
            if user is None:
                raise NotLoggedInError("log in first")
            return await then(user)

        return await _answering(checked(), lambda body: body)


async def _now(value: dict[str, Any]) -> dict[str, Any]:
    return value


async def _answering(work: Awaitable[Any], body: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """`body(result of work)`, or the error it raised as an answer."""
    try:
        return body(await work)
    except ServiceError as exc:
        return error(exc)
    except Exception:
        log.exception("web call failed")
        return error(ServiceError("internal error"))
