// The point-cloud viewer of the share page and the app: one GLB of points drawn with three.js.
//
// It frames the cloud by its robust extent (the 5-95 % range of the points along each
// screen axis) so it fits both the horizontal and the vertical field of view, portrait
// or landscape, and frames it again when the canvas changes size until someone moves
// the camera. Points keep a fixed size in pixels. `drawnAt` is the page's clock
// (ms since navigation) when the cloud was first drawn.
//
// It draws on demand only: a load draws at once; camera moves, resizes, reset and
// point size ask for a frame, and the asks of one animation frame make one draw.
// Nothing is drawn while nothing changes. In a software renderer every draw of the
// 800,000-point default cloud costs about half a second, so no draw is spent twice,
// and there is no multisampling (antialias): it multiplied the cost of the points'
// fragments and only smoothed the edges of 2-pixel squares.
import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

export const BACKGROUND = 0x0f1115;
const SAMPLE = 50000; // points looked at to find the extent
const LOW = 0.05, HIGH = 0.95; // the share of points the framing keeps in view on each axis
const MARGIN = 1.08;

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

function dispose(root) {
  root.traverse((object) => {
    object.geometry?.dispose();
    for (const material of [object.material].flat()) material?.dispose();
  });
}

// A quantized attribute (normalized int16 positions, uint8 colours) as plain floats with the same
// values: software renderers convert quantized attributes on every draw; this converts them once.
function asFloat32(attribute) {
  if (attribute.array instanceof Float32Array && !attribute.normalized) return attribute;
  const { count, itemSize } = attribute;
  const values = new Float32Array(count * itemSize);
  for (let i = 0; i < count; i++) {
    for (let k = 0; k < itemSize; k++) values[i * itemSize + k] = attribute.getComponent(i, k);
  }
  return new THREE.BufferAttribute(values, itemSize);
}

export class CloudViewer {
  constructor(canvas) {
    this.canvas = canvas;
    this.renderer = new THREE.WebGLRenderer({ canvas, antialias: false });
    this.renderer.setPixelRatio(window.devicePixelRatio);
    this.scene = new THREE.Scene();
    this.scene.background = new THREE.Color(BACKGROUND);
    this.camera = new THREE.PerspectiveCamera(50, 1, 0.001, 1000);
    this.controls = new OrbitControls(this.camera, canvas);
    this.materials = [];
    this.cloud = null;
    this.extent = null; // { centre, half }: the robust box of the cloud
    this.untouched = true; // no one moved the camera since it was framed: a resize frames it again
    this.pointSize = 2;
    this.points = 0;
    this.drawnAt = null;
    this.asked = false; // a frame is asked for and not drawn yet
    this.controls.addEventListener("start", () => { this.untouched = false; });
    this.controls.addEventListener("change", () => this.render());
    new ResizeObserver(() => {
      this.resize();
      if (this.untouched && this.extent) this.frame();
      this.render();
    }).observe(canvas);
  }

  // Load the GLB at `url` in place of the cloud shown; resolves to its point count.
  async load(url) {
    const gltf = await new GLTFLoader().loadAsync(url);
    if (this.cloud) {
      this.scene.remove(this.cloud);
      dispose(this.cloud);
    }
    this.materials = [];
    let points = 0;
    gltf.scene.traverse((object) => {
      if (object.isPoints) {
        for (const name of ["position", "color"]) {
          const attribute = object.geometry.attributes[name];
          if (attribute) object.geometry.setAttribute(name, asFloat32(attribute));
        }
        object.material.sizeAttenuation = false;
        object.material.size = this.pointSize;
        this.materials.push(object.material);
        points += object.geometry.attributes.position.count;
      }
    });
    this.cloud = gltf.scene;
    this.scene.add(gltf.scene);
    this.extent = robustExtent(gltf.scene);
    this.points = points;
    this.resize();
    this.frame();
    this.draw();
    this.drawnAt ??= performance.now();
    return points;
  }

  resize() {
    const width = Math.max(this.canvas.clientWidth, 1), height = Math.max(this.canvas.clientHeight, 1);
    this.renderer.setSize(width, height, false);
    this.camera.aspect = width / height;
    this.camera.updateProjectionMatrix();
  }

  // Ask for a frame: drawn at the next animation frame, once however many asks came before.
  render() {
    if (this.asked) return;
    this.asked = true;
    requestAnimationFrame(() => {
      if (this.asked) this.draw();
    });
  }

  // Draw a frame now (it answers any frame asked for).
  draw() {
    this.asked = false;
    this.renderer.render(this.scene, this.camera);
  }

  // Put the camera where the whole robust extent fits, looking down -z at its centre.
  frame() {
    if (!this.extent) return;
    const { camera, controls, extent } = this;
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
    this.untouched = true;
  }

  reset() {
    this.frame();
    this.render();
  }

  setPointSize(size) {
    this.pointSize = size;
    for (const material of this.materials) material.size = size;
    this.render();
  }
}
