"""The share page's HTML: link-preview meta tags (Open Graph, Twitter) and the three.js viewer.

Every value put into the page is HTML-escaped here. The viewer, the same
module the app draws its results with (`/app/viewer.js`), frames the
cloud by its robust extent (the 5-95 % range of the points along each
screen axis) so it fits both the horizontal and the vertical field of view,
portrait or landscape; "Reset view" frames it again, and the point size
slider (also `#size=N` in the link) sets the size in pixels.
`document.body.dataset.state` goes loading -> shown | failed,
`dataset.pointSize` holds the size shown (the browser test reads both) and
`dataset.drawnMs` when the cloud was first drawn (ms since the navigation;
scripts/bench_page.py). The GLB is preloaded beside the modules.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date

APP_PREFIX = "/app/"  # the app's static files, the viewer module (`serve_app/http/static/viewer.js`) among them


@dataclass(frozen=True)
class PageFacts:
    """What the page says about one shared scan."""

    hashed_name: str
    page_url: str  # absolute, as the client asked for it
    point_count: int | None = None
    day: date | None = None  # when it was stored (UTC)
    has_thumbnail: bool = False

    @property
    def title(self) -> str:
        return "3D scan" if self.point_count is None else f"3D scan, {self.point_count:,} points"

    @property
    def description(self) -> str:
        parts = ["A 3D point cloud to turn around in the browser"]
        if self.day is not None:
            parts.append(f"made {self.day.isoformat()}")
        return ", ".join(parts) + "."


def page_html(facts: PageFacts, viewer_prefix: str, app_prefix: str = APP_PREFIX) -> str:
    """The whole page for `facts`; three.js is imported from `viewer_prefix`, the viewer from `app_prefix`."""
    return (
        PAGE_TEMPLATE.replace("{{TITLE}}", html.escape(facts.title))
        .replace("{{APP}}", html.escape(app_prefix))
        .replace("{{HASH}}", html.escape(facts.hashed_name))
        .replace("{{VIEWER}}", html.escape(viewer_prefix))
        .replace("{{META}}", meta_tags(facts))  # last: nothing in the tags' values is taken for a placeholder
    )


def meta_tags(facts: PageFacts) -> str:
    """Open Graph and Twitter card tags; the image ones only when the scan has a preview picture."""
    tags = [
        ("property", "og:type", "website"),
        ("property", "og:title", facts.title),
        ("property", "og:description", facts.description),
        ("property", "og:url", facts.page_url),
        ("name", "twitter:card", "summary_large_image" if facts.has_thumbnail else "summary"),
        ("name", "twitter:title", facts.title),
        ("name", "twitter:description", facts.description),
    ]
    if facts.has_thumbnail:
        image = facts.page_url + ".jpg"
        tags += [
            ("property", "og:image", image),
            ("property", "og:image:type", "image/jpeg"),
            ("name", "twitter:image", image),
        ]
    return "\n".join(
        f'<meta {kind}="{html.escape(key)}" content="{html.escape(value, quote=True)}">' for kind, key, value in tags
    )


PAGE_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
{{META}}
<style>
  html, body { margin: 0; height: 100%; background: #0F1115; color: #d8dee9; font: 14px system-ui, sans-serif; }
  #scene { display: block; width: 100%; height: 100%; touch-action: none; }
  #bar { position: fixed; left: 8px; right: 8px; bottom: 8px; display: flex; flex-wrap: wrap; gap: 4px 12px;
         align-items: center; pointer-events: none; }
  #bar > * { pointer-events: auto; }
  #bar a { color: #88c0d0; }
  #bar button { font: inherit; color: inherit; background: #2e3440; border: 1px solid #4c566a; border-radius: 4px; }
  #bar input { vertical-align: middle; width: 96px; }
</style>
<script type="importmap">
{"imports": {"three": "{{VIEWER}}build/three.module.js", "three/addons/": "{{VIEWER}}examples/jsm/"}}
</script>
<!-- fetched at once, beside the modules, instead of once they have run -->
<link rel="preload" href="{{HASH}}.glb" as="fetch" crossorigin="anonymous">
<link rel="modulepreload" href="{{APP}}viewer.js">
<link rel="modulepreload" href="{{VIEWER}}build/three.module.js">
<link rel="modulepreload" href="{{VIEWER}}build/three.core.js">
<link rel="modulepreload" href="{{VIEWER}}examples/jsm/loaders/GLTFLoader.js">
<link rel="modulepreload" href="{{VIEWER}}examples/jsm/controls/OrbitControls.js">
</head>
<body data-state="loading">
<canvas id="scene"></canvas>
<div id="bar">
  <span id="status">Loading…</span>
  <a href="{{HASH}}.glb" download>Download the GLB</a>
  <button id="reset" type="button">Reset view</button>
  <label>Point size <input id="size" type="range" min="1" max="10" step="1" value="2"></label>
</div>
<script type="module">
import { CloudViewer } from "{{APP}}viewer.js";

const status = document.getElementById("status");
const sizeInput = document.getElementById("size");
const viewer = new CloudViewer(document.getElementById("scene"));

function setPointSize(size) {
  viewer.setPointSize(size);
  sizeInput.value = String(size);
  document.body.dataset.pointSize = String(size);
}

function sizeFromLink() {
  const size = Number(new URLSearchParams(location.hash.slice(1)).get("size"));
  return Number.isInteger(size) && size >= Number(sizeInput.min) && size <= Number(sizeInput.max) ? size : null;
}

setPointSize(sizeFromLink() ?? Number(sizeInput.value));
viewer.load("{{HASH}}.glb").then((points) => {
  status.textContent = points.toLocaleString() + " points";
  document.body.dataset.points = String(points);
  document.body.dataset.drawnMs = String(Math.round(viewer.drawnAt));
  document.body.dataset.state = "shown";
  document.getElementById("reset").addEventListener("click", () => viewer.reset());
  sizeInput.addEventListener("input", () => {
    setPointSize(Number(sizeInput.value));
    history.replaceState(null, "", "#size=" + sizeInput.value);
  });
}, (error) => {
  status.textContent = "This scan could not be shown: " + error;
  document.body.dataset.state = "failed";
});
</script>
</body>
</html>
"""
