"""SharePages without Ray: the responses of the share routes, hash validation and the viewer's file rules.

The GLB routes run on a local storage root and on a bucket of the test S3 server.
"""

from __future__ import annotations

import asyncio

import pytest
from starlette.responses import FileResponse

from serve_app.config import AppSettings
from serve_app.http.share_pages import GLB_MEDIA_TYPE, SharePages

PRIVATE_FOR_A_YEAR = "private, max-age=31536000, immutable"  # the browser keeps it, a shared cache does not


@pytest.fixture
def viewer(tmp_path):
    """A stand-in of the npm `three` package: the two parts the page imports, and a file outside them."""
    root = tmp_path / "three"
    (root / "build").mkdir(parents=True)
    (root / "build" / "three.module.js").write_text("export const REVISION = 'x';")
    (root / "examples" / "jsm" / "loaders").mkdir(parents=True)
    (root / "examples" / "jsm" / "loaders" / "GLTFLoader.js").write_text("export class GLTFLoader {}")
    (root / "package.json").write_text("{}")
    (tmp_path / "secret.js").write_text("not for the web")
    return root


def pages_of(store, viewer, endpoint_url=""):
    storage = {"database_url": str(store._db.url), "storage_root": store.root.location, "s3_endpoint_url": endpoint_url}
    return SharePages(AppSettings.from_dict({"storage": storage, "share": {"viewer_dir": str(viewer)}}))


@pytest.fixture
def pages(owned_store, viewer):
    pages = pages_of(owned_store, viewer)
    yield pages
    pages.close()


@pytest.fixture(params=["local", "s3"])
def any_root(request, owned_store, viewer):
    """(store, pages) on the local root of `owned_store`, or on a fresh bucket with the same database."""
    from serve_app.storage import GlbStore
    from serve_app.storage.blob_root import open_root

    store, endpoint_url = owned_store, ""
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        endpoint_url = server.endpoint_url
        store = GlbStore(owned_store._db, open_root(server.new_bucket_url(), endpoint_url=endpoint_url))
    pages = pages_of(store, viewer, endpoint_url)
    yield store, pages
    pages.close()


def served(response, **request_headers):
    """(status, headers, body) of a response sent for a GET with these request headers."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(name.replace("_", "-").encode(), value.encode()) for name, value in request_headers.items()],
    }
    messages = []

    async def receive():  # the client never disconnects: the response ends the exchange
        await asyncio.Event().wait()

    async def send(message):
        messages.append(message)

    asyncio.run(response(scope, receive, send))
    start = messages[0]
    headers = {name.decode().lower(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in messages[1:])


def test_page_of_a_stored_glb(pages, owned_store):
    stored = owned_store.save(b"glTF-bytes", 7, "scan")
    response = pages.page(stored.hashed_name)
    body = response.body.decode()
    assert response.status_code == 200 and response.media_type == "text/html"
    assert f'"{stored.hashed_name}.glb"' in body and '"three": "/viewer/build/three.module.js"' in body
    assert "https://" not in body and "http://" not in body  # nothing from elsewhere
    assert response.headers["cache-control"] == "private, no-cache"
    assert pages.page(f" {stored.hashed_name}.glb ").status_code == 200  # typed as on the TCP side


def test_glb_with_etag_and_not_modified(any_root):
    store, pages = any_root
    stored = store.save(b"glTF-bytes", 7, "scan")
    status, headers, body = served(pages.glb(stored.hashed_name, {}))
    assert status == 200 and body == b"glTF-bytes" and headers["etag"] == f'"{stored.hashed_name}"'
    again = pages.glb(stored.hashed_name, {"if-none-match": f'"other", "{stored.hashed_name}"'})
    assert again.status_code == 304 and again.body == b""
    assert again.headers["cache-control"] == PRIVATE_FOR_A_YEAR


def test_a_scan_is_never_kept_by_a_shared_cache(any_root):
    store, pages = any_root
    stored = store.save(GLB, 7, "scan")
    for request_headers in ({}, {"range": "bytes=0-3"}, {"range": f"bytes={len(GLB)}-"}):
        _, headers, _ = served(pages.glb(stored.hashed_name, request_headers), **request_headers)
        assert headers["cache-control"] == PRIVATE_FOR_A_YEAR, request_headers
    assert "private" in pages.page(stored.hashed_name).headers["cache-control"]


@pytest.mark.parametrize("text", ["0" * 64, "not-a-hash", "../../etc/passwd", "A" * 64])
def test_unknown_or_malformed_hash_is_404(pages, text):
    assert pages.page(text).status_code == 404
    assert pages.glb(text, {}).status_code == 404


def test_a_glb_whose_file_is_gone_is_404(any_root):
    store, pages = any_root
    stored = store.save(b"glTF-bytes", 7, "scan")
    store.root.delete(stored.key)
    assert pages.glb(stored.hashed_name, {}).status_code == 404
    assert b"ERROR_FILE_MISSING" in pages.page(stored.hashed_name).body


GLB = b"glTF" + bytes(range(256)) * 2048  # 512 KiB and 4 bytes: more than one piece of a ranged read


def test_whole_glb_with_length_etag_and_inline_name(any_root):
    store, pages = any_root
    stored = store.save(GLB, 7, "scan")
    assert pages.page(stored.hashed_name).status_code == 200
    status, headers, body = served(pages.glb(stored.hashed_name, {}))
    assert status == 200 and body == GLB
    assert headers["content-length"] == str(len(GLB)) and headers["content-type"] == GLB_MEDIA_TYPE
    assert headers["etag"] == f'"{stored.hashed_name}"' and headers["accept-ranges"] == "bytes"
    assert headers["content-disposition"] == f'inline; filename="{stored.hashed_name}.glb"'
    assert headers["cache-control"] == PRIVATE_FOR_A_YEAR


@pytest.mark.parametrize(
    "asked, span",
    [("bytes=0-3", (0, 4)), ("bytes=1000-", (1000, len(GLB))), ("bytes=-10", (len(GLB) - 10, len(GLB))),
     ("bytes=300000-300009", (300000, 300010)), ("bytes=5-99999999", (5, len(GLB)))],
)
def test_byte_ranges(any_root, asked, span):
    store, pages = any_root
    stored = store.save(GLB, 7, "scan")
    status, headers, body = served(pages.glb(stored.hashed_name, {"range": asked}), range=asked)
    start, stop = span
    assert status == 206 and body == GLB[start:stop]
    assert headers["content-range"] == f"bytes {start}-{stop - 1}/{len(GLB)}"
    assert headers["content-length"] == str(stop - start)


MANY = "9" * 5000  # more digits than Python converts to an int


@pytest.mark.parametrize(
    "asked, answer",
    [
        # valid and satisfiable: 206 with the span (a last position past the end, or a suffix longer
        # than the file, stops at the end)
        ("bytes=0-3", (0, 4)),
        ("bytes=5-" + MANY, (5, len(GLB))),
        ("bytes=-" + MANY, (0, len(GLB))),
        ("bytes=" + "0" * 40 + "7-9", (7, 10)),
        # valid, nothing of the file: 416
        (f"bytes={len(GLB)}-", 416),
        (f"bytes={len(GLB)}-{len(GLB) + 10}", 416),
        ("bytes=" + MANY + "-", 416),
        ("bytes=-0", 416),
        # invalid, or more than one range: ignored, 200 with the whole file
        ("bytes=5-3", 200),
        ("bytes=" + MANY + "-3", 200),
        ("bytes=" + MANY + "-" + MANY[1:], 200),
        ("bytes=1-0", 200),
        ("bytes=abc-def", 200),
        ("bytes=0x10-0x20", 200),
        ("bytes=-", 200),
        ("bytes=", 200),
        ("bytes 0-3", 200),
        ("items=0-3", 200),
        ("bytes=0-3,10-20", 200),
        ("bytes=0-3," + MANY, 200),
        ("bytes=\u0660-\u0663", 200),  # Arabic-Indic digits are not ASCII digits
    ],
)
def test_the_same_range_gets_the_same_answer_from_both_roots(any_root, asked, answer):
    store, pages = any_root
    stored = store.save(GLB, 7, "scan")
    status, headers, body = served(pages.glb(stored.hashed_name, {"range": asked}), range=asked)
    if answer == 416:
        assert status == 416 and headers["content-range"] == f"bytes */{len(GLB)}" and body == b""
    elif answer == 200:
        assert status == 200 and body == GLB and "content-range" not in headers
        assert headers["content-length"] == str(len(GLB))
    else:
        start, stop = answer
        assert status == 206 and body == GLB[start:stop]
        assert headers["content-range"] == f"bytes {start}-{stop - 1}/{len(GLB)}"


def test_if_range_other_than_the_etag_gets_the_whole_file(any_root):
    store, pages = any_root
    stored = store.save(GLB, 7, "scan")
    for if_range, status_wanted in ((f'"{stored.hashed_name}"', 206), ('"other"', 200), ("W/\"x\"", 200)):
        request_headers = {"range": "bytes=0-3", "if-range": if_range}
        status, _, body = served(pages.glb(stored.hashed_name, request_headers), **request_headers)
        assert status == status_wanted and body == (GLB[:4] if status == 206 else GLB), if_range


def test_viewer_serves_only_three_js_modules(pages, viewer):
    served = pages.viewer_file("build/three.module.js")
    assert isinstance(served, FileResponse) and served.media_type == "text/javascript"
    assert pages.viewer_file("examples/jsm/loaders/GLTFLoader.js").status_code == 200
    for path in ("package.json", "../secret.js", "build/../../secret.js", "/etc/passwd", "build/missing.js"):
        assert pages.viewer_file(path).status_code == 404, path


def glb_with_points(*counts: int) -> bytes:
    """A GLB whose JSON chunk declares point primitives of these vertex counts (and one triangle mesh)."""
    import json
    import struct

    accessors = [{"count": count, "type": "VEC3", "componentType": 5126} for count in counts] + [{"count": 999}]
    meshes = [{"primitives": [{"attributes": {"POSITION": i}, "mode": 0}]} for i in range(len(counts))]
    meshes.append({"primitives": [{"attributes": {"POSITION": len(counts)}}]})  # triangles: not points
    document = json.dumps({"asset": {"version": "2.0"}, "accessors": accessors, "meshes": meshes}).encode()
    document += b" " * (-len(document) % 4)
    chunk = struct.pack("<II", len(document), 0x4E4F534A) + document
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunk)) + chunk


JPEG = b"\xff\xd8\xff\xe0 preview \xff\xd9"
PAGE_URL = "https://scans.example/g/"


def same_answer_without_body(get, head):
    """HEAD: the status and headers of the GET, and no body."""
    got, headed = served(get), served(head)
    assert headed[0] == got[0] and headed[1] == got[1], (got[:2], headed[:2])
    assert headed[2] == b""
    return got


def test_head_of_the_page_the_glb_and_the_picture(any_root):
    store, pages = any_root
    stored = store.save(GLB, 7, "scan", thumbnail=JPEG)
    name = stored.hashed_name
    status, headers, body = same_answer_without_body(pages.page(name, PAGE_URL + name), pages.page(name, PAGE_URL + name, head=True))
    assert status == 200 and headers["content-length"] == str(len(body)) and headers["content-type"].startswith("text/html")
    status, headers, body = same_answer_without_body(pages.glb(name, {}), pages.glb(name, {}, head=True))
    assert status == 200 and body == GLB and headers["content-length"] == str(len(GLB))
    assert headers["content-type"] == GLB_MEDIA_TYPE and headers["etag"] == f'"{name}"'
    assert headers["cache-control"] == PRIVATE_FOR_A_YEAR
    status, headers, body = same_answer_without_body(pages.thumbnail(name, {}), pages.thumbnail(name, {}, head=True))
    assert status == 200 and body == JPEG and headers["content-type"] == "image/jpeg"
    assert headers["content-length"] == str(len(JPEG))


@pytest.mark.parametrize("request_headers", [{"range": "bytes=0-3"}, {"range": f"bytes={len(GLB)}-"}, "etag"])
def test_head_of_ranges_and_not_modified(any_root, request_headers):
    store, pages = any_root
    stored = store.save(GLB, 7, "scan")
    if request_headers == "etag":
        request_headers = {"if-none-match": f'"{stored.hashed_name}"'}
    get = pages.glb(stored.hashed_name, request_headers)
    head = pages.glb(stored.hashed_name, request_headers, head=True)
    status, headers, _ = same_answer_without_body(get, head)
    assert status in (206, 304, 416) and headers["cache-control"] == PRIVATE_FOR_A_YEAR


@pytest.mark.parametrize("text", ["0" * 64, "not-a-hash"])
def test_head_of_nothing_is_404(pages, text):
    for get, head in (
        (pages.page(text), pages.page(text, head=True)),
        (pages.glb(text, {}), pages.glb(text, {}, head=True)),
        (pages.thumbnail(text, {}), pages.thumbnail(text, {}, head=True)),
    ):
        assert same_answer_without_body(get, head)[0] == 404


def test_picture_served_with_etag_and_not_modified(any_root):
    store, pages = any_root
    stored = store.save(GLB, 7, "scan", thumbnail=JPEG)
    status, headers, body = served(pages.thumbnail(stored.hashed_name, {}))
    etag = f'"{stored.hashed_name}.jpg"'
    assert status == 200 and body == JPEG and headers["etag"] == etag
    assert headers["content-disposition"] == f'inline; filename="{stored.hashed_name}.jpg"'
    assert pages.thumbnail(stored.hashed_name, {"if-none-match": etag}).status_code == 304
    assert pages.glb(stored.hashed_name, {"if-none-match": etag}).status_code == 200  # not the GLB's tag


def test_a_scan_stored_without_picture_has_no_picture_and_no_image_tag(any_root):
    store, pages = any_root
    stored = store.save(glb_with_points(10), 7, "scan")
    assert pages.thumbnail(stored.hashed_name, {}).status_code == 404
    body = pages.page(stored.hashed_name, PAGE_URL + stored.hashed_name).body.decode()
    assert "og:image" not in body and "twitter:image" not in body
    assert '<meta name="twitter:card" content="summary">' in body


def test_a_deleted_scan_takes_its_picture(owned_store, pages):
    from serve_app.storage.lifecycle import ResultLifecycle

    stored = owned_store.save(GLB, 7, "scan", thumbnail=JPEG)
    assert pages.thumbnail(stored.hashed_name, {}).status_code == 200
    ResultLifecycle(owned_store._db, owned_store.root).delete([stored.hashed_name])
    assert pages.thumbnail(stored.hashed_name, {}).status_code == 404
    assert not any(path.suffix == ".jpg" for path in owned_store.root.path.rglob("*"))


def test_preview_tags_name_points_date_and_picture(pages, owned_store):
    from serve_app.storage.models import utcnow

    stored = owned_store.save(glb_with_points(1200, 34), 7, "scan", thumbnail=JPEG)
    url = PAGE_URL + stored.hashed_name
    body = pages.page(stored.hashed_name, url).body.decode()
    assert "<title>3D scan, 1,234 points</title>" in body
    assert '<meta property="og:title" content="3D scan, 1,234 points">' in body
    assert f'<meta property="og:url" content="{url}">' in body
    assert f'<meta property="og:image" content="{url}.jpg">' in body
    assert f'<meta name="twitter:image" content="{url}.jpg">' in body
    assert '<meta name="twitter:card" content="summary_large_image">' in body
    assert f"made {utcnow().date().isoformat()}" in body


def test_preview_tags_are_escaped(pages, owned_store):
    stored = owned_store.save(glb_with_points(5), 7, "scan", thumbnail=JPEG)
    hostile = 'https://x/"><script>alert(1)</script>&/g/' + stored.hashed_name  # a Host header sets this
    body = pages.page(stored.hashed_name, hostile).body.decode()
    assert "<script>alert(1)" not in body and "&\"" not in body
    escaped = f"https://x/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;/g/{stored.hashed_name}"
    assert f'<meta property="og:url" content="{escaped}">' in body
    assert f'<meta property="og:image" content="{escaped}.jpg">' in body


@pytest.mark.parametrize(
    "glb, count",
    [(glb_with_points(3, 4), 7), (glb_with_points(), 0), (b"glTF" + b"\0" * 16, None), (b"not a glb at all....", None),
     (b"glTF" + b"\0" * 8 + b"\xff\xff\xff\x7f" + b"JSON", None)],
)
def test_point_count_from_the_json_chunk(glb, count):
    import io

    from serve_app.http.share_pages import glb_point_count

    file = io.BytesIO(glb)
    assert glb_point_count(file.read(20), file.read) == count
