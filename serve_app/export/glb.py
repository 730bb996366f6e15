"""A minimal binary glTF 2.0 writer: coloured point clouds and coloured triangle meshes.

Written directly (one pass over the arrays, no per-point Python work) because
clouds reach tens of millions of points. Every geometry becomes one node with
one primitive: POSITION with min/max, RGBA uint8 COLOR_0, and uint32 indices
for meshes. Materials are unlit (KHR_materials_unlit, optional), so points
show their photo colour; viewers without the extension fall back to a rough,
non-metallic material.

Positions are float32 (12 bytes), or with `quantize` normalized int16
(KHR_mesh_quantization, required then): each geometry's box is mapped onto
[-1, 1] per axis and the node's translation and scale map it back, so a point
takes 8 bytes (three int16 and the padding vertex attributes need) plus 4 of
colour. The error is at most half a step of 1/32767 of the box's half size
per axis. With `offset` (and `scale`), a root node carries every geometry node
and maps the scene point p to scale * (p + offset) (the viewer-friendly
placement); without, geometry nodes are the scene's roots.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

import numpy as np

from .laps import Laps

GLB_MAGIC, GLB_VERSION = b"glTF", 2
CHUNK_JSON, CHUNK_BIN = b"JSON", b"BIN\x00"
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
SHORT, FLOAT, UNSIGNED_BYTE, UNSIGNED_INT = 5122, 5126, 5121, 5125
MODE_POINTS, MODE_TRIANGLES = 0, 4
UNLIT = "KHR_materials_unlit"
QUANTIZATION = "KHR_mesh_quantization"
INT16_STEPS = 32767  # normalized int16: -32767..32767 stand for -1..1


@dataclass(frozen=True)
class Geometry:
    """One named geometry: vertices [N,3], RGB(A) uint8 colours [N,3|4], faces [M,3] or None for points."""

    name: str
    vertices: np.ndarray
    colors: np.ndarray
    faces: np.ndarray | None = None


class _Buffer:
    """The BIN chunk under construction, and the JSON entries that describe it."""

    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []
        self.length = 0
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, data: np.ndarray, *, target: int, component: int, kind: str, stride: int = 0, **extra) -> int:
        """Append `data` as a 4-byte aligned buffer view with one accessor; return the accessor index.

        stride: the view's byteStride when rows carry padding (int16 VEC3 stored as 4 shorts).
        """
        data = np.ascontiguousarray(data)
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": data.nbytes, "target": target}
        if stride:
            view["byteStride"] = stride
        self.views.append(view)
        self.parts.append(memoryview(data).cast("B"))
        self.length += data.nbytes
        padding = -self.length % 4
        if padding:
            self.parts.append(b"\x00" * padding)
            self.length += padding
        self.accessors.append(
            {"bufferView": len(self.views) - 1, "componentType": component, "count": len(data), "type": kind, **extra}
        )
        return len(self.accessors) - 1


def _rgba(colors: np.ndarray) -> np.ndarray:
    colors = np.asarray(colors, np.uint8)
    if colors.shape[1] == 4:
        return colors
    rgba = np.full((len(colors), 4), 255, np.uint8)
    rgba[:, :3] = colors
    return rgba


def _quantized(vertices: np.ndarray) -> tuple[np.ndarray, list[float], list[float], list[int], list[int]]:
    """int16 rows [N, 4] (x, y, z, padding) in the box mapped to [-1, 1], the node's translation and
    scale, and the rows' least and greatest x, y, z.

    Axis by axis through one float64 column (in place): the values of
    `clip(rint((vertices - centre) / half * INT16_STEPS))` without [N, 3] float64 temporaries.
    """
    rows = np.zeros((len(vertices), 4), np.int16)
    column = np.empty(len(vertices), np.float64)
    centre, half, least, greatest = [], [], [], []
    for axis in range(3):
        values = vertices[:, axis]
        lower, upper = np.float64(values.min()), np.float64(values.max())
        centre.append((lower + upper) / 2)
        half.append(np.maximum((upper - lower) / 2, np.finfo(np.float32).tiny))  # a flat axis still gets a scale
        np.subtract(values, centre[axis], out=column)
        column /= half[axis]
        column *= INT16_STEPS
        np.rint(column, out=column)
        np.clip(column, -INT16_STEPS, INT16_STEPS, out=column)
        rows[:, axis] = column
        least.append(int(rows[:, axis].min()))
        greatest.append(int(rows[:, axis].max()))
    scale = np.array(half) / INT16_STEPS
    return rows, np.array(centre).tolist(), (scale * INT16_STEPS).tolist(), least, greatest


def write_glb(
    geometries: list[Geometry],
    *,
    quantize: bool = False,
    offset: np.ndarray | None = None,
    scale: float = 1.0,
    laps: Laps | None = None,
) -> bytes:
    """GLB bytes holding each geometry as its own node, in order (see the module docstring for the options).

    laps: given, it gets the seconds spent quantizing and packing ("quantize") and writing the file ("write").
    """
    laps = laps if laps is not None else Laps()
    buffer = _Buffer()
    meshes, nodes = [], []
    for geometry in geometries:
        vertices = np.asarray(geometry.vertices, np.float32)
        node: dict = {"name": geometry.name, "mesh": len(meshes)}
        if quantize:
            rows, node["translation"], node["scale"], least, greatest = _quantized(vertices)
            position = buffer.add(
                rows,
                target=ARRAY_BUFFER,
                component=SHORT,
                kind="VEC3",
                stride=8,
                normalized=True,
                min=[float(value) for value in least],
                max=[float(value) for value in greatest],
            )
        else:
            position = buffer.add(
                vertices,
                target=ARRAY_BUFFER,
                component=FLOAT,
                kind="VEC3",
                min=vertices.min(axis=0).tolist(),
                max=vertices.max(axis=0).tolist(),
            )
        color = buffer.add(
            _rgba(geometry.colors), target=ARRAY_BUFFER, component=UNSIGNED_BYTE, kind="VEC4", normalized=True
        )
        primitive = {"attributes": {"POSITION": position, "COLOR_0": color}, "material": 0}
        if geometry.faces is None:
            primitive["mode"] = MODE_POINTS
        else:
            faces = np.asarray(geometry.faces, np.uint32).reshape(-1)
            primitive["indices"] = buffer.add(
                faces, target=ELEMENT_ARRAY_BUFFER, component=UNSIGNED_INT, kind="SCALAR"
            )
            primitive["mode"] = MODE_TRIANGLES
        meshes.append({"name": geometry.name, "primitives": [primitive]})
        nodes.append(node)
    laps.mark("quantize")
    roots = list(range(len(nodes)))
    if offset is not None:
        root = {"name": "scene", "translation": [float(v) * scale for v in offset], "children": roots}
        if scale != 1.0:
            root["scale"] = [float(scale)] * 3
        nodes.append(root)
        roots = [len(nodes) - 1]

    tree = {
        "asset": {"version": "2.0", "generator": "vggt-service"},
        "extensionsUsed": [UNLIT, QUANTIZATION] if quantize else [UNLIT],
        **({"extensionsRequired": [QUANTIZATION]} if quantize else {}),
        "scene": 0,
        "scenes": [{"nodes": roots}],
        "nodes": nodes,
        "meshes": meshes,
        "materials": [
            {
                "name": "vertex_colors",
                "pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0, "roughnessFactor": 1},
                "extensions": {UNLIT: {}},
            }
        ],
        "accessors": buffer.accessors,
        "bufferViews": buffer.views,
        "buffers": [{"byteLength": buffer.length}],
    }
    json_chunk = json.dumps(tree, separators=(",", ":")).encode()
    json_chunk += b" " * (-len(json_chunk) % 4)
    total = 12 + 8 + len(json_chunk) + 8 + buffer.length
    header = struct.pack("<4sII", GLB_MAGIC, GLB_VERSION, total)
    glb = b"".join(
        [
            header,
            struct.pack("<I4s", len(json_chunk), CHUNK_JSON),
            json_chunk,
            struct.pack("<I4s", buffer.length, CHUNK_BIN),
            *buffer.parts,
        ]
    )
    laps.mark("write")
    return glb
