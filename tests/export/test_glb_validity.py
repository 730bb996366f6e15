"""The exported bytes follow the GLB 2.0 container and glTF accessor rules, and known inputs give known bytes.

A structural check in Python runs always; the Khronos glTF-Validator runs too
when GLTF_VALIDATOR_DIR names a folder where `npm install gltf-validator` was
done (it is a JavaScript package, so it is not a project dependency).

Pinned bytes: three small GLBs are committed under tests/data/ (glb_*.glb) and
must come out byte for byte (`test_pinned_bytes`), so any change to the file
layout (JSON keys or their order, accessors, padding, quantization, camera
markers, the selection of the export) fails a test. To change the layout on
purpose, re-pin and review:

    GLB_REPIN=1 .venv/bin/python -m pytest -q tests/export/test_glb_validity.py -k pinned
    git diff --stat tests/data/   # then load the new files in a viewer, and commit them

The validator checks (Python always, Khronos when available) also run on the
committed files, so a re-pinned file must still be valid.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from serve_app.export import ExportOptions, export_glb, predictions_to_glb
from serve_app.export.glb import Geometry, write_glb

COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
COMPONENT_DTYPES = {5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
POINTS, TRIANGLES = 0, 4


def parse_glb(glb: bytes) -> tuple[dict, bytes]:
    magic, version, length = struct.unpack_from("<4sII", glb, 0)
    assert (magic, version, length) == (b"glTF", 2, len(glb))
    json_length, json_type = struct.unpack_from("<I4s", glb, 12)
    assert json_type == b"JSON" and json_length % 4 == 0
    tree = json.loads(glb[20 : 20 + json_length])
    offset = 20 + json_length
    binary = b""
    if offset < len(glb):
        bin_length, bin_type = struct.unpack_from("<I4s", glb, offset)
        assert bin_type == b"BIN\x00" and bin_length % 4 == 0
        binary = glb[offset + 8 : offset + 8 + bin_length]
        assert offset + 8 + bin_length == len(glb)
    return tree, binary


def accessor_data(tree: dict, binary: bytes, index: int) -> np.ndarray:
    accessor = tree["accessors"][index]
    view = tree["bufferViews"][accessor["bufferView"]]
    width = TYPE_SIZES[accessor["type"]]
    element = COMPONENT_BYTES[accessor["componentType"]] * width
    start = view.get("byteOffset", 0) + accessor.get("byteOffset", 0)
    assert start % COMPONENT_BYTES[accessor["componentType"]] == 0
    assert accessor.get("byteOffset", 0) + accessor["count"] * element <= view["byteLength"]
    assert view.get("byteOffset", 0) + view["byteLength"] <= len(binary)
    stride = view.get("byteStride", element)
    assert stride % 4 == 0 or view.get("target") != 34962  # vertex attributes are 4-byte aligned
    dtype = np.dtype(COMPONENT_DTYPES[accessor["componentType"]])
    return np.array(np.ndarray((accessor["count"], width), dtype, binary, start, (stride, dtype.itemsize)))


def check_tree(tree: dict, binary: bytes) -> None:
    assert tree["asset"]["version"] == "2.0"
    assert tree["buffers"][0]["byteLength"] <= len(binary)
    for mesh in tree["meshes"]:
        for primitive in mesh["primitives"]:
            attributes = primitive["attributes"]
            position = accessor_data(tree, binary, attributes["POSITION"])
            accessor = tree["accessors"][attributes["POSITION"]]
            assert accessor["type"] == "VEC3"
            quantized = "KHR_mesh_quantization" in tree.get("extensionsRequired", [])
            assert accessor["componentType"] == (5122 if quantized else 5126)
            assert accessor.get("normalized", False) is quantized
            np.testing.assert_allclose(accessor["min"], position.min(axis=0), rtol=1e-6)
            np.testing.assert_allclose(accessor["max"], position.max(axis=0), rtol=1e-6)
            assert np.isfinite(position).all()
            color = tree["accessors"][attributes["COLOR_0"]]
            assert color["type"] in ("VEC3", "VEC4") and color["componentType"] == 5121
            assert color["componentType"] == 5126 or color.get("normalized") is True
            assert accessor_data(tree, binary, attributes["COLOR_0"]).shape[0] == len(position)
            if primitive.get("mode", TRIANGLES) == POINTS:
                assert "indices" not in primitive
            else:
                indices = accessor_data(tree, binary, primitive["indices"])
                assert indices.size % 3 == 0 and indices.max() < len(position)


DATA = Path(__file__).resolve().parents[1] / "data"
PINNED = ("glb_writer_float.glb", "glb_writer_quantized.glb", "glb_export_default.glb")


def pinned_glbs(predictions: dict) -> dict[str, bytes]:
    """The pinned files' inputs: five coloured points and a tetrahedron marker through the writer (float32,
    then quantized with a root offset and scale), and the conftest predictions through the default export
    with camera markers (selection, alignment, centring, quantization)."""
    points = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 3], [-1, -0.5, 0.25]], np.float32)
    colors = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [10, 20, 30]], np.uint8)
    corners = np.array([[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]], np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.uint32)
    marker = Geometry("camera_000", corners, np.tile(np.array([[255, 0, 40, 255]], np.uint8), (4, 1)), faces)
    geometries = [Geometry("points", points, colors), marker]
    return {
        "glb_writer_float.glb": write_glb(geometries),
        "glb_writer_quantized.glb": write_glb(geometries, quantize=True, offset=np.array([0.5, -1.0, 2.0]), scale=1.5),
        "glb_export_default.glb": export_glb(predictions, ExportOptions(show_cameras=True)).glb,
    }


@pytest.mark.parametrize("name", PINNED)
def test_pinned_bytes(predictions, name):
    glb = pinned_glbs(predictions)[name]
    if os.environ.get("GLB_REPIN") == "1":
        (DATA / name).write_bytes(glb)
    check_tree(*parse_glb(glb))
    assert glb == (DATA / name).read_bytes(), (
        f"{name}: the GLB bytes changed. If the layout change is deliberate, re-pin (module docstring)"
    )


@pytest.fixture
def exports(predictions) -> dict[str, bytes]:
    zero = dict(predictions, world_points_conf=np.zeros_like(predictions["world_points_conf"]))
    return {
        **{f"pinned_{Path(name).stem}": (DATA / name).read_bytes() for name in PINNED},
        "default": predictions_to_glb(predictions),
        "cameras": predictions_to_glb(predictions, show_cameras=True),
        "frame": predictions_to_glb(predictions, show_cameras=True, frame=1, source="depth"),
        "fallback": predictions_to_glb(zero, show_cameras=True),
        "capped": export_glb(predictions, ExportOptions(show_cameras=True, max_points=2, downsample="voxel")).glb,
        "service_default": export_glb(predictions, ExportOptions(show_cameras=True)).glb,  # quantized, centred
        "confidence_cap": export_glb(predictions, ExportOptions(show_cameras=True, max_points=3)).glb,
    }


def test_glb_structure(exports):
    for name, glb in exports.items():
        tree, binary = parse_glb(glb)
        check_tree(tree, binary)
        modes = [p.get("mode", TRIANGLES) for m in tree["meshes"] for p in m["primitives"]]
        assert modes[0] == POINTS, name
        assert set(modes[1:]) <= {TRIANGLES}, name


def test_buffer_views_are_tagged(exports):
    tree, _ = parse_glb(exports["cameras"])
    assert {view.get("target") for view in tree["bufferViews"]} == {34962, 34963}


@pytest.mark.skipif(
    not (os.environ.get("GLTF_VALIDATOR_DIR") and shutil.which("node")),
    reason="set GLTF_VALIDATOR_DIR to a folder with `npm install gltf-validator` to run the Khronos validator",
)
def test_khronos_validator_reports_no_issue(exports, tmp_path):
    script = tmp_path / "validate.mjs"
    script.write_text(
        "import fs from 'fs';\n"
        "import { createRequire } from 'module';\n"
        "const require = createRequire(process.env.GLTF_VALIDATOR_DIR + '/');\n"
        "const validator = require('gltf-validator');\n"
        "for (const f of process.argv.slice(2)) {\n"
        "  const r = await validator.validateBytes(new Uint8Array(fs.readFileSync(f)));\n"
        "  const i = r.issues;\n"
        "  console.log(f, i.numErrors, i.numWarnings, i.numInfos, i.numHints);\n"
        "}\n"
    )
    paths = []
    for name, glb in exports.items():
        path = tmp_path / f"{name}.glb"
        path.write_bytes(glb)
        paths.append(str(path))
    out = subprocess.run(["node", str(script), *paths], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        assert line.split()[1:] == ["0", "0", "0", "0"], line
