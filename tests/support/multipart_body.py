"""Multipart/form-data bodies as a browser sends them, and a browser upload fed to a `WebJobRunner`."""

from __future__ import annotations

import uuid


def multipart(fields: list[tuple[str, bytes | str]], boundary: str | None = None) -> tuple[bytes, dict]:
    """(body, headers) of a form with `fields`: bytes values are files, str values plain fields."""
    boundary = boundary or uuid.uuid4().hex
    body = b""
    for name, value in fields:
        if isinstance(value, bytes):
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x.jpg"\r\n\r\n'
            body += head.encode() + value + b"\r\n"
        else:
            body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return body + f"--{boundary}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={boundary}"}


def boundary_of(headers: dict) -> str:
    return headers["content-type"].split("boundary=", 1)[1]


async def upload(runner, user, kind: str, files: list[bytes], piece: int = 7) -> str:
    """The job id of `files` sent in field `kind` through `runner.begin`/`receive`/`finish`, in pieces."""
    body, headers = multipart([(kind, data) for data in files])
    upload_id = await runner.begin(user, len(body), boundary_of(headers))
    for start in range(0, len(body), piece):
        await runner.receive(upload_id, body[start : start + piece])
    return await runner.finish(upload_id)
