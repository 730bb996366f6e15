"""The HTTP API's errors: the `ERROR_*` codes only it has, and the HTTP status of every code it answers.

An error answer is `{"error": code, "message": text}` with the status of
`STATUS` (500 for a code not listed). The protocol's codes keep their
meaning (`tcp_proxy.errors`), as do the re-export's (`serve_app.stages.reexport`);
these add what only a browser request can get wrong.
"""

from __future__ import annotations

from tcp_proxy.errors import ServiceError


class BadRequestError(ServiceError):
    """The request's shape is wrong: a missing, extra or mistyped field, no file, both kinds."""

    code = "ERROR_BAD_REQUEST"


class LoginFailedError(ServiceError):
    """Wrong password, unknown or disabled account, or a throttled login: one answer for all."""

    code = "ERROR_LOGIN_FAILED"


class CsrfError(ServiceError):
    code = "ERROR_CSRF"


class NotFoundError(ServiceError):
    """No such job for this user."""

    code = "ERROR_NOT_FOUND"


STATUS: dict[str, int] = {
    "ERROR_BAD_REQUEST": 400,
    "ERROR_TOO_MANY_IMAGES": 400,
    "ERROR_BAD_OPTIONS": 400,
    "ERROR_INCOMPLETE_REQUEST": 400,
    "ERROR_NOT_LOGGED_IN": 401,
    "ERROR_LOGIN_FAILED": 401,
    "ERROR_CSRF": 403,
    "ERROR_VIP_REQUIRED": 403,
    "ERROR_NOT_FOUND": 404,
    "ERROR_READ_TIMEOUT": 408,
    "ERROR_HASH_NOT_FOUND": 404,
    "ERROR_PREDICTIONS_EXPIRED": 410,
    "ERROR_PAYLOAD_TOO_LARGE": 413,
    "ERROR_BUSY": 503,
    "ERROR_MODEL_NOT_LOADED": 503,
    "ERROR_QUOTA_EXCEEDED": 507,
}


def http_status(code: str) -> int:
    return STATUS.get(code, 500)
