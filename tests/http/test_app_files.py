"""AppFiles without Ray: the browser app's files, their types and cache headers, and the paths it refuses."""

from __future__ import annotations

import asyncio
import re

import pytest

from serve_app.http.app_files import APP_DIR, AppFiles


@pytest.fixture
def files(tmp_path):
    """An app folder with one file of each kind, a hidden file, and a secret beside the folder."""
    root = tmp_path / "app"
    (root / "lib").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>app</title>")
    (root / "app.js").write_text("export const ready = true;")
    (root / "app.css").write_text("body { margin: 0; }")
    (root / "lib" / "part.js").write_text("export default 1;")
    (root / "notes.txt").write_text("a type the app does not serve")
    (root / ".hidden.js").write_text("not for the web")
    (tmp_path / "secret.js").write_text("outside the folder")
    (root / "link.js").symlink_to(tmp_path / "secret.js")
    return AppFiles(root)


def served(response, method: str = "GET"):
    """(status, headers, body) of a response sent for a request of `method`."""
    messages = []

    async def receive():
        await asyncio.Event().wait()

    async def send(message):
        messages.append(message)

    asyncio.run(response({"type": "http", "method": method, "path": "/", "headers": []}, receive, send))
    headers = {name.decode().lower(): value.decode() for name, value in messages[0]["headers"]}
    return messages[0]["status"], headers, b"".join(m.get("body", b"") for m in messages[1:])


@pytest.mark.parametrize(
    "path, media_type",
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("lib/part.js", "text/javascript; charset=utf-8"),
    ],
)
def test_each_kind_of_file_with_its_type_and_cache_headers(files, path, media_type):
    status, headers, body = served(files.file(path, {}))
    assert status == 200 and headers["content-type"] == media_type
    assert body == (files.root / path).read_bytes() and headers["content-length"] == str(len(body))
    assert headers["cache-control"] == "no-cache" and headers["x-content-type-options"] == "nosniff"
    assert re.fullmatch(r'"[0-9a-f]{32}"', headers["etag"])


def test_the_index_is_the_page(files):
    status, headers, body = served(files.index({}))
    assert status == 200 and headers["content-type"].startswith("text/html") and body.startswith(b"<!doctype html>")


@pytest.mark.parametrize(
    "path",
    [
        "../secret.js",
        "lib/../../secret.js",
        "/etc/passwd",
        "..",
        "lib/..",
        "lib//part.js",
        "./app.js",
        "lib\\..\\..\\secret.js",
        "app.js\x00.css",
        ".hidden.js",
        "link.js",  # a link out of the folder
        "notes.txt",  # a type the app does not serve
        "missing.js",
        "lib",  # a folder
        "",
        "a/" * 100 + "app.js",  # over the length limit
    ],
)
def test_outside_hidden_unknown_or_missing_is_404(files, path):
    assert files.locate(path) is None
    status, _, body = served(files.file(path, {}))
    assert status == 404 and b"secret" not in body and b"outside" not in body


def test_a_matching_etag_is_304_and_a_changed_file_gets_a_new_one(files):
    etag = served(files.file("app.js", {}))[1]["etag"]
    status, headers, body = served(files.file("app.js", {"if-none-match": f'"other", {etag}'}))
    assert status == 304 and body == b"" and headers["etag"] == etag
    (files.root / "app.js").write_text("export const ready = false; // changed")
    status, headers, _ = served(files.file("app.js", {"if-none-match": etag}))
    assert status == 200 and headers["etag"] != etag


def test_head_has_the_headers_of_get_and_no_body(files):
    got = served(files.file("app.css", {}))
    headed = served(files.file("app.css", {}), method="HEAD")
    assert headed[0] == 200 and headed[2] == b""
    for name in ("content-type", "content-length", "etag", "cache-control"):
        assert headed[1][name] == got[1][name], name


def test_the_shipped_app_has_its_page_modules_and_the_viewer():
    shipped = AppFiles()
    assert shipped.root == APP_DIR.resolve()
    for name in ("index.html", "app.js", "app.css", "api.js", "progress.js", "upload.js", "result.js", "viewer.js"):
        assert shipped.locate(name) is not None, name
    page = (APP_DIR / "index.html").read_text()
    assert '"three": "/viewer/build/three.module.js"' in page and 'src="/app/app.js"' in page
    assert "https://" not in page  # nothing fetched from elsewhere
