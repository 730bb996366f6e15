"""Share links in a browser: `/g/<hash>` shows the point cloud, `/g/<hash>.glb` is the file.

The hash is the share link, as on the TCP side (GET_GLB): the same
validation (`GlbStore.locate`), and an unknown, malformed or vanished hash
is a 404. The GLB is streamed from its file or its object in a bucket, the
same way for both (`serve_app.http.range_response`), with `Content-Length`,
an `ETag` (the hash: a stored GLB never changes), `304` for a matching
`If-None-Match` and byte ranges (`Range`, `206`). A scan is private to
whoever holds its link: the page and the file are `Cache-Control: private`,
kept by the browser but never by a shared cache. The page draws the cloud
with three.js, which the set-up script installs from the npm registry
(`.venv/web/node_modules/three`) and the service serves itself under
`/viewer/`: no CDN, nothing fetched from elsewhere.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path, PurePosixPath
from typing import Mapping

from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from serve_app.config import AppSettings
from serve_app.http.range_response import range_response
from serve_app.storage import Database, GlbStore
from serve_app.storage.blob_root import settings_root
from tcp_proxy.errors import FileMissingError, HashNotFoundError, InvalidHashError

log = logging.getLogger(__name__)

GLB_MEDIA_TYPE = "model/gltf-binary"
VIEWER_PREFIX = "/viewer/"  # three.js's files, under this path
VIEWER_PARTS = ("build", "examples/jsm")  # the parts of the npm package the page imports
CHECKOUT_VIEWER = Path(__file__).resolve().parents[2] / ".venv" / "web" / "node_modules" / "three"
JS_TYPES = {".js": "text/javascript", ".mjs": "text/javascript"}
# a stored GLB never changes: the browser keeps it, a shared cache (proxy, CDN) never does
GLB_CACHE_CONTROL = "private, max-age=31536000, immutable"
PAGE_CACHE_CONTROL = "private, no-cache"  # asked again each time: a deleted scan's page must go


class SharePages:
    """Responses of the share routes for one database and storage root."""

    def __init__(self, settings: AppSettings) -> None:
        self._db = Database(settings.storage.database_url)
        self._store = GlbStore(self._db, settings_root(settings.storage))
        self.viewer_dir = Path(settings.share.viewer_dir or CHECKOUT_VIEWER).resolve()
        if not (self.viewer_dir / "build" / "three.module.js").is_file():
            log.warning(
                "three.js not found in %s: share pages offer the download only (run scripts/setup_venv.sh, "
                "or set share.viewer_dir to an npm-installed `three` folder)",
                self.viewer_dir,
            )

    def page(self, hash_text: str) -> Response:
        """The HTML page that draws the GLB of `hash_text`, or a 404."""
        try:
            hashed_name = PurePosixPath(self._store.locate(hash_text)).stem
        except (InvalidHashError, HashNotFoundError, FileMissingError) as exc:
            return _not_found(exc)
        return HTMLResponse(_page_html(hashed_name), headers={"Cache-Control": PAGE_CACHE_CONTROL})

    def glb(self, hash_text: str, request_headers: Mapping[str, str]) -> Response:
        """The GLB file (ranges honoured), 304 when the client has it, or a 404."""
        try:
            key = self._store.locate(hash_text)
        except (InvalidHashError, HashNotFoundError, FileMissingError) as exc:
            return _not_found(exc)
        name = PurePosixPath(key).stem
        headers = {"ETag": f'"{name}"', "Cache-Control": GLB_CACHE_CONTROL}
        if headers["ETag"] in [tag.strip() for tag in request_headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        try:
            file, size = self._store.root.open(key)
        except FileNotFoundError:  # deleted since it was located
            return _not_found(FileMissingError(f"the file of {name} is missing"))
        headers["Content-Disposition"] = f'inline; filename="{name}.glb"'
        return range_response(file, size, request_headers, headers, GLB_MEDIA_TYPE)

    def viewer_file(self, relative: str) -> Response:
        """One file of three.js's `build/` or `examples/jsm/`, nothing else."""
        path = (self.viewer_dir / relative).resolve()
        allowed = any(path.is_relative_to(self.viewer_dir / part) for part in VIEWER_PARTS)
        if not allowed or path.suffix not in JS_TYPES or not path.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(path, media_type=JS_TYPES[path.suffix], headers={"Cache-Control": "public, max-age=86400"})

    def close(self) -> None:
        self._db.dispose()


def _not_found(exc: Exception) -> Response:
    message = getattr(exc, "code", "ERROR_HASH_NOT_FOUND")
    return PlainTextResponse(f"no shared 3D scan here ({message})\n", status_code=404)


def _page_html(hashed_name: str) -> str:
    name = html.escape(hashed_name)
    return PAGE_TEMPLATE.replace("{{HASH}}", name).replace("{{VIEWER}}", VIEWER_PREFIX)


# The page: the cloud centred and framed, orbit controls, clear colour #0F1115.
# `document.body.dataset.state` goes loading -> shown | failed (the browser test reads it).
PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>3D scan {{HASH}}</title>
<style>
  html, body { margin: 0; height: 100%; background: #0F1115; color: #d8dee9; font: 14px system-ui, sans-serif; }
  #scene { display: block; width: 100%; height: 100%; }
  #bar { position: fixed; left: 12px; bottom: 10px; }
  #bar a { color: #88c0d0; }
</style>
<script type="importmap">
{"imports": {"three": "{{VIEWER}}build/three.module.js", "three/addons/": "{{VIEWER}}examples/jsm/"}}
</script>
</head>
<body data-state="loading">
<canvas id="scene"></canvas>
<div id="bar"><span id="status">Loading…</span> · <a href="{{HASH}}.glb" download>Download the GLB</a></div>
<script type="module">
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const canvas = document.getElementById("scene");
const status = document.getElementById("status");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x0f1115);
const camera = new THREE.PerspectiveCamera(50, 1, 0.001, 1000);
const controls = new OrbitControls(camera, canvas);

function resize() {
  const width = canvas.clientWidth, height = canvas.clientHeight;
  renderer.setSize(width, height, false);
  camera.aspect = width / height;
  camera.updateProjectionMatrix();
}

function render() {
  controls.update();
  renderer.render(scene, camera);
}

new GLTFLoader().load("{{HASH}}.glb", (gltf) => {
  let points = 0;
  gltf.scene.traverse((object) => {
    if (object.isPoints) {
      object.material.size = 2;
      object.material.sizeAttenuation = false;
      points += object.geometry.attributes.position.count;
    }
  });
  scene.add(gltf.scene);
  const box = new THREE.Box3().setFromObject(gltf.scene);
  const centre = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1e-6);
  camera.near = radius / 1000;
  camera.far = radius * 100;
  camera.position.copy(centre).add(new THREE.Vector3(0, 0, radius * 2.2));
  controls.target.copy(centre);
  resize();
  render();
  status.textContent = points.toLocaleString() + " points";
  document.body.dataset.points = String(points);
  document.body.dataset.state = "shown";
  controls.addEventListener("change", render);
  window.addEventListener("resize", () => { resize(); render(); });
}, undefined, (error) => {
  status.textContent = "This scan could not be shown: " + error;
  document.body.dataset.state = "failed";
});
</script>
</body>
</html>
"""
