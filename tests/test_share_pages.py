"""SharePages without Ray: the responses of the share routes, hash validation and the viewer's file rules."""

from __future__ import annotations

import pytest
from starlette.responses import FileResponse

from serve_app.config import AppSettings
from serve_app.share_pages import GLB_MEDIA_TYPE, SharePages


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


@pytest.fixture
def pages(owned_store, viewer):
    settings = AppSettings.from_dict(
        {
            "storage": {"database_url": str(owned_store._db.url), "storage_root": str(owned_store.root)},
            "share": {"viewer_dir": str(viewer)},
        }
    )
    pages = SharePages(settings)
    yield pages
    pages.close()


def test_page_of_a_stored_glb(pages, owned_store):
    stored = owned_store.save(b"glTF-bytes", 7, "scan")
    response = pages.page(stored.hashed_name)
    body = response.body.decode()
    assert response.status_code == 200 and response.media_type == "text/html"
    assert f'"{stored.hashed_name}.glb"' in body and '"three": "/viewer/build/three.module.js"' in body
    assert "https://" not in body and "http://" not in body  # nothing from elsewhere
    assert pages.page(f" {stored.hashed_name}.glb ").status_code == 200  # typed as on the TCP side


def test_glb_with_etag_and_not_modified(pages, owned_store):
    stored = owned_store.save(b"glTF-bytes", 7, "scan")
    response = pages.glb(stored.hashed_name, {})
    assert isinstance(response, FileResponse) and response.path == stored.file_path
    assert response.media_type == GLB_MEDIA_TYPE and response.headers["etag"] == f'"{stored.hashed_name}"'
    again = pages.glb(stored.hashed_name, {"if-none-match": f'"other", "{stored.hashed_name}"'})
    assert again.status_code == 304 and again.body == b""


@pytest.mark.parametrize("text", ["0" * 64, "not-a-hash", "../../etc/passwd", "A" * 64])
def test_unknown_or_malformed_hash_is_404(pages, text):
    assert pages.page(text).status_code == 404
    assert pages.glb(text, {}).status_code == 404


def test_a_glb_whose_file_is_gone_is_404(pages, owned_store):
    stored = owned_store.save(b"glTF-bytes", 7, "scan")
    stored.file_path.unlink()
    assert pages.glb(stored.hashed_name, {}).status_code == 404
    assert b"ERROR_FILE_MISSING" in pages.page(stored.hashed_name).body


def test_viewer_serves_only_three_js_modules(pages, viewer):
    served = pages.viewer_file("build/three.module.js")
    assert isinstance(served, FileResponse) and served.media_type == "text/javascript"
    assert pages.viewer_file("examples/jsm/loaders/GLTFLoader.js").status_code == 200
    for path in ("package.json", "../secret.js", "build/../../secret.js", "/etc/passwd", "build/missing.js"):
        assert pages.viewer_file(path).status_code == 404, path
