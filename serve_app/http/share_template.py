"""The share page's HTML: link-preview meta tags (Open Graph, Twitter) and the three.js viewer.

Every value put into the page is HTML-escaped here. The viewer frames the
cloud by its robust extent (the 5-95 % range of the points along each
screen axis) so it fits both the horizontal and the vertical field of view,
portrait or landscape; "Reset view" frames it again, and the point size
slider (also `#size=N` in the link) sets the size in pixels.
`document.body.dataset.state` goes loading -> shown | failed and
`dataset.pointSize` holds the size shown (the browser test reads both).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date


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


def page_html(facts: PageFacts, viewer_prefix: str) -> str:
    """The whole page for `facts`; three.js is imported from `viewer_prefix`."""
    return (
        PAGE_TEMPLATE.replace("{{TITLE}}", html.escape(facts.title))
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
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const SAMPLE = 50000;  // points looked at to find the extent
const LOW = 0.05, HIGH = 0.95;  // the share of points the framing keeps in view on each axis
const MARGIN = 1.08;
const canvas = document.getElementById("scene");
const status = document.getElementById("status");
const sizeInput = document.getElementById("size");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x0f1115);
const camera = new THREE.PerspectiveCamera(50, 1, 0.001, 1000);
const controls = new OrbitControls(camera, canvas);
const materials = [];
let extent = null;  // { centre, half }: the robust box of the cloud
let untouched = true;  // no one moved the camera since it was framed: a resize frames it again

function resize() {
  const width = Math.max(canvas.clientWidth, 1), height = Math.max(canvas.clientHeight, 1);
  renderer.setSize(width, height, false);
  camera.aspect = width / height;
  camera.updateProjectionMatrix();
}

function render() {
  renderer.render(scene, camera);
}

function at(sorted, share) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(share * (sorted.length - 1))))];
}

function robustExtent(root) {
  const axes = [[], [], []];
  const point = new THREE.Vector3();
  root.updateMatrixWorld(true);
  root.traverse((object) => {
    if (!object.isPoints) return;
    const positions = object.geometry.attributes.position;
    const step = Math.max(1, Math.floor(positions.count / SAMPLE));
    for (let i = 0; i < positions.count; i += step) {
      point.fromBufferAttribute(positions, i).applyMatrix4(object.matrixWorld);
      axes[0].push(point.x); axes[1].push(point.y); axes[2].push(point.z);
    }
  });
  let low, high;
  if (axes[0].length > 0) {
    const sorted = axes.map((values) => Float64Array.from(values).sort());
    low = new THREE.Vector3(...sorted.map((values) => at(values, LOW)));
    high = new THREE.Vector3(...sorted.map((values) => at(values, HIGH)));
  } else {
    const box = new THREE.Box3().setFromObject(root);
    low = box.min; high = box.max;
  }
  return { centre: low.clone().add(high).multiplyScalar(0.5), half: high.clone().sub(low).multiplyScalar(0.5) };
}

function frame() {
  const tanVertical = Math.tan(THREE.MathUtils.degToRad(camera.fov) / 2);
  const tanHorizontal = tanVertical * camera.aspect;
  const halfWidth = Math.max(extent.half.x, 1e-6), halfHeight = Math.max(extent.half.y, 1e-6);
  // the nearest face of the box must fit both fields of view
  const distance = MARGIN * Math.max(halfWidth / tanHorizontal, halfHeight / tanVertical) + extent.half.z;
  const reach = distance + extent.half.length();
  camera.near = Math.max(distance / 1000, 1e-6);
  camera.far = reach * 20;
  camera.up.set(0, 1, 0);
  camera.position.copy(extent.centre).add(new THREE.Vector3(0, 0, distance));
  controls.target.copy(extent.centre);
  camera.lookAt(extent.centre);
  camera.updateProjectionMatrix();
  controls.update();
  untouched = true;
}

function setPointSize(size) {
  for (const material of materials) material.size = size;
  sizeInput.value = String(size);
  document.body.dataset.pointSize = String(size);
}

function sizeFromLink() {
  const size = Number(new URLSearchParams(location.hash.slice(1)).get("size"));
  return Number.isInteger(size) && size >= Number(sizeInput.min) && size <= Number(sizeInput.max) ? size : null;
}

new GLTFLoader().load("{{HASH}}.glb", (gltf) => {
  let points = 0;
  gltf.scene.traverse((object) => {
    if (object.isPoints) {
      object.material.sizeAttenuation = false;
      materials.push(object.material);
      points += object.geometry.attributes.position.count;
    }
  });
  scene.add(gltf.scene);
  extent = robustExtent(gltf.scene);
  setPointSize(sizeFromLink() ?? Number(sizeInput.value));
  resize();
  frame();
  render();
  status.textContent = points.toLocaleString() + " points";
  document.body.dataset.points = String(points);
  document.body.dataset.state = "shown";
  controls.addEventListener("start", () => { untouched = false; });
  controls.addEventListener("change", render);
  window.addEventListener("resize", () => { resize(); if (untouched) frame(); render(); });
  document.getElementById("reset").addEventListener("click", () => { frame(); render(); });
  sizeInput.addEventListener("input", () => {
    setPointSize(Number(sizeInput.value));
    history.replaceState(null, "", "#size=" + sizeInput.value);
    render();
  });
}, undefined, (error) => {
  status.textContent = "This scan could not be shown: " + error;
  document.body.dataset.state = "failed";
});
</script>
</body>
</html>
"""
