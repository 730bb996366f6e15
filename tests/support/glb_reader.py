"""A small reader of the GLBs the service writes, independent of the writer: float32 or quantized
(KHR_mesh_quantization, normalized int16 with byteStride) positions, node translations and scales
(nested), COLOR_0 and indices. trimesh does not dequantize normalized positions, so the tests read
quantized GLBs with this."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
WIDTHS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
NORMALIZED_MAX = {np.int8: 127, np.uint8: 255, np.int16: 32767, np.uint16: 65535}


@dataclass
class Node:
    name: str
    vertices: np.ndarray  # [N, 3] float64, in scene coordinates (every parent's transform applied)
    colors: np.ndarray  # [N, 4] uint8
    faces: np.ndarray | None  # [M, 3] or None for points


def parse(glb: bytes) -> tuple[dict, bytes]:
    magic, version, length = struct.unpack_from("<4sII", glb, 0)
    assert (magic, version, length) == (b"glTF", 2, len(glb))
    json_length, _ = struct.unpack_from("<I4s", glb, 12)
    tree = json.loads(glb[20 : 20 + json_length])
    bin_length, _ = struct.unpack_from("<I4s", glb, 20 + json_length)
    return tree, glb[28 + json_length : 28 + json_length + bin_length]


def accessor(tree: dict, binary: bytes, index: int, *, decode: bool = True) -> np.ndarray:
    """The accessor's elements; normalized integers become floats in [-1, 1] (or [0, 1]) when `decode`."""
    spec = tree["accessors"][index]
    view = tree["bufferViews"][spec["bufferView"]]
    dtype = np.dtype(COMPONENTS[spec["componentType"]])
    width = WIDTHS[spec["type"]]
    stride = view.get("byteStride", dtype.itemsize * width)
    start = view.get("byteOffset", 0) + spec.get("byteOffset", 0)
    rows = np.ndarray((spec["count"], width), dtype, binary, start, (stride, dtype.itemsize))
    if decode and spec.get("normalized"):
        scale = NORMALIZED_MAX[COMPONENTS[spec["componentType"]]]
        return np.maximum(rows.astype(np.float64) / scale, -1.0)
    return np.array(rows)


def nodes(glb: bytes) -> dict[str, Node]:
    """Every mesh node by name, its vertices in scene coordinates."""
    tree, binary = parse(glb)
    out: dict[str, Node] = {}

    def visit(index: int, parent_scale: np.ndarray, parent_shift: np.ndarray) -> None:
        node = tree["nodes"][index]
        assert "rotation" not in node and "matrix" not in node  # the writer uses translation and scale only
        # a node maps p to translation + scale * p, after its parent's own mapping
        scale = parent_scale * np.asarray(node.get("scale", [1, 1, 1]), np.float64)
        shift = parent_shift + parent_scale * np.asarray(node.get("translation", [0, 0, 0]), np.float64)
        if "mesh" in node:
            primitive = tree["meshes"][node["mesh"]]["primitives"][0]
            position = accessor(tree, binary, primitive["attributes"]["POSITION"])
            colors = accessor(tree, binary, primitive["attributes"]["COLOR_0"], decode=False)
            faces = None
            if "indices" in primitive:
                faces = accessor(tree, binary, primitive["indices"]).reshape(-1, 3)
            out[node["name"]] = Node(node["name"], position * scale + shift, colors, faces)
        for child in node.get("children", []):
            visit(child, scale, shift)

    for root in tree["scenes"][tree.get("scene", 0)]["nodes"]:
        visit(root, np.ones(3), np.zeros(3))
    return out
