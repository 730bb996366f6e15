"""A browser's side of the HTTP API for tests: a cookie jar and CSRF token over plain `http.client`."""

from __future__ import annotations

import http.client
import json
import uuid

from service_users import PASSWORD


class Browser:
    """A cookie jar and CSRF token over one HTTP port."""

    def __init__(self, port: int, prefix: str = "") -> None:
        """prefix: the app's route prefix ("" for "/")."""
        self.port = port
        self.prefix = prefix
        self.cookie = ""
        self.csrf = ""

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None, csrf: bool = True):
        """(status, headers, body) of one request; a JSON body is decoded."""
        sent = dict(headers or {})
        if self.cookie:
            sent["Cookie"] = self.cookie
        if csrf and self.csrf:
            sent["X-CSRF-Token"] = self.csrf
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(method, self.prefix + path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            received = {k.lower(): v for k, v in response.getheaders()}
        finally:
            connection.close()
        if received.get("content-type", "").startswith("application/json"):
            data = json.loads(data)
        return response.status, received, data

    def login(self, username: str, password: str = PASSWORD):
        body = json.dumps({"username": username, "password": password}).encode()
        status, headers, data = self.request("POST", "/api/login", body, {"Content-Type": "application/json"})
        if status == 200:
            self.cookie = headers["set-cookie"].split(";", 1)[0]
            self.csrf = data["csrf_token"]
        return status, headers, data

    def upload(self, field: str, files: list[bytes], **kwargs):
        body, content_type = multipart(field, files)
        return self.request("POST", "/api/reconstructions", body, {"Content-Type": content_type}, **kwargs)


def multipart(field: str, files: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for n, data in enumerate(files):
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="f{n}.bin"\r\n'
        parts.append(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
