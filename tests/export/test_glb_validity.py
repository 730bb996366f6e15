"""The exported bytes follow the GLB 2.0 container and glTF accessor rules.

A structural check in Python runs always; the Khronos glTF-Validator runs too
when GLTF_VALIDATOR_DIR names a folder where `npm install gltf-validator` was
done (it is a JavaScript package, so it is not a project dependency).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

from serve_app.export import ExportOptions, export_glb, predictions_to_glb

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


@pytest.fixture
def exports(predictions) -> dict[str, bytes]:
    zero = dict(predictions, world_points_conf=np.zeros_like(predictions["world_points_conf"]))
    return {
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
