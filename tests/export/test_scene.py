"""GLB output: round trip through trimesh, alignment, cameras, fallback, cap."""

from __future__ import annotations

import glb_reader
import numpy as np
import pytest

from serve_app.export import export_glb, predictions_to_glb
from serve_app.export.options import ExportOptions
from serve_app.export.cameras import camera_colors
from serve_app.export.scene import VIEW_SIZE, alignment_transform, scene_scale

AS_REFERENCE = {"quantize": False, "center": False}  # float32, identity nodes: what trimesh reads back


def test_round_trip_default_options(predictions, helpers):
    glb = predictions_to_glb(predictions)
    assert glb[:4] == b"glTF"
    points, colors = helpers.cloud_of(glb)
    world = predictions["world_points"].reshape(-1, 3)[1:]  # the least confident point is dropped
    np.testing.assert_allclose(points, helpers.first_camera_view(world), atol=1e-5)
    np.testing.assert_array_equal(colors, helpers.colors[1:])
    assert helpers.cameras_of(glb) == []


def test_depth_source_round_trip(predictions, helpers):
    points, _ = helpers.cloud_of(predictions_to_glb(predictions, source="depth", conf_percentile=0))
    expected = helpers.first_camera_view(predictions["world_points_from_depth"].reshape(-1, 3))
    np.testing.assert_allclose(points, expected, atol=1e-5)
    assert points[0].tolist() == [1.0, -20.0, 200.0]


def test_masks_round_trip(predictions, helpers):
    glb = predictions_to_glb(predictions, conf_percentile=0, mask_black_bg=True, mask_white_bg=True)
    points, colors = helpers.cloud_of(glb)
    assert (-points[:, 0]).tolist() == [3, 4, 5, 6, 7, 8]
    np.testing.assert_array_equal(colors, helpers.colors[2:])


def test_single_frame_is_aligned_to_its_own_camera(predictions, helpers):
    glb = predictions_to_glb(predictions, frame=1, conf_percentile=0, show_cameras=True)
    points, _ = helpers.cloud_of(glb)
    # camera 1 is at world z = -5: its camera-to-world matrix shifts z by -5 after the flip
    world = predictions["world_points"][1].reshape(-1, 3)
    np.testing.assert_allclose(points, helpers.first_camera_view(world) + [0, 0, -5], atol=1e-5)
    meshes = helpers.cameras_of(glb)
    assert len(meshes) == 1
    assert tuple(helpers.marker_colors(meshes[0])[0, :3]) == camera_colors(1)[0]


def test_alignment_matrix_is_first_camera_flip_and_half_turn():
    world_to_camera = np.eye(4)
    world_to_camera[:3, 3] = [1.0, 2.0, 3.0]
    align = alignment_transform(world_to_camera)
    expected = np.diag([-1.0, -1.0, 1.0, 1.0])
    expected[:3, 3] = [-1.0, -2.0, -3.0]
    np.testing.assert_allclose(align, expected, atol=1e-12)


def test_fallback_point_when_nothing_survives(predictions, helpers):
    predictions["world_points_conf"][:] = 0.0
    result = export_glb(predictions, ExportOptions(show_cameras=True, **AS_REFERENCE))
    assert (result.point_count, result.selected_count) == (1, 0)
    points, colors = helpers.cloud_of(result.glb)
    np.testing.assert_allclose(points, [[-1.0, 0.0, 0.0]], atol=1e-6)  # (1, 0, 0) in the first camera's view
    np.testing.assert_array_equal(colors, [[255, 255, 255]])
    meshes = helpers.cameras_of(result.glb)
    assert len(meshes) == 2
    # scene scale falls back to 1: markers 0.1 deep
    assert meshes[0].vertices[:, 2].max() == pytest.approx(0.1, abs=1e-6)


def test_camera_markers_sized_and_coloured(predictions, helpers):
    glb = predictions_to_glb(predictions, show_cameras=True)
    meshes = helpers.cameras_of(glb)
    assert len(meshes) == 2
    # kept points have x = 2..8, constant y and z: the 5-95 box diagonal is 7.7 - 2.3
    scale = scene_scale(predictions["world_points"].reshape(-1, 3)[1:])
    assert scale == pytest.approx(5.4)
    depth, radius = 0.1 * scale, 0.05 * scale
    for mesh, color, centre_z in zip(meshes, camera_colors(2), [0.0, -5.0], strict=True):
        assert tuple(helpers.marker_colors(mesh)[0, :3]) == color
        z = mesh.vertices[:, 2] - centre_z
        assert z.min() == pytest.approx(0.0, abs=1e-6)  # tip at the camera centre
        assert z.max() == pytest.approx(depth, abs=1e-6)  # base one marker depth ahead (+z)
        assert np.hypot(mesh.vertices[:, 0], mesh.vertices[:, 1]).max() == pytest.approx(radius, abs=1e-6)
    assert camera_colors(2) == [(255, 0, 40), (0, 255, 139)]


def test_point_cap_in_the_glb(predictions, helpers):
    full, _ = helpers.cloud_of(predictions_to_glb(predictions, conf_percentile=0))
    options = ExportOptions(conf_percentile=0, max_points=3, **AS_REFERENCE)
    result = export_glb(predictions, options)
    assert (result.point_count, result.selected_count) == (3, 8)
    capped, _ = helpers.cloud_of(result.glb)
    assert len(capped) == 3
    assert all(any(np.allclose(p, q) for q in full) for p in capped)
    assert export_glb(predictions, options).glb == result.glb


def test_cap_keeps_marker_size(predictions, helpers):
    uncapped = helpers.cameras_of(predictions_to_glb(predictions, show_cameras=True))
    capped = export_glb(predictions, ExportOptions(show_cameras=True, max_points=2, **AS_REFERENCE)).glb
    capped = helpers.cameras_of(capped)
    np.testing.assert_allclose(uncapped[0].vertices, capped[0].vertices)


def test_voxel_cap_in_the_glb(predictions, helpers):
    result = export_glb(predictions, ExportOptions(conf_percentile=0, max_points=4, downsample="voxel"))
    assert result.point_count <= 4
    assert len(helpers.cloud_of(result.glb)[0]) == result.point_count


def test_size_shrinks_with_the_cap():
    rng = np.random.default_rng(0)
    S, H, W = 2, 32, 32
    predictions = {
        "world_points": rng.normal(size=(S, H, W, 3)).astype(np.float32),
        "world_points_conf": rng.uniform(1, 2, (S, H, W)).astype(np.float32),
        "images": rng.uniform(0, 1, (S, 3, H, W)).astype(np.float32),
        "extrinsic": np.tile(np.eye(4, dtype=np.float32)[:3], (S, 1, 1)),
    }
    full = export_glb(predictions, ExportOptions(max_points=None, quantize=False))
    capped = export_glb(predictions, ExportOptions(max_points=200, quantize=False))
    # 16 bytes per point: float32 xyz plus RGBA bytes
    assert len(full.glb) - len(capped.glb) == pytest.approx(16 * (full.point_count - 200), abs=64)
    quantized = export_glb(predictions, ExportOptions(max_points=None))
    # 12 bytes per point: int16 xyz, 2 bytes of padding, RGBA bytes
    assert len(full.glb) - len(quantized.glb) == pytest.approx(4 * full.point_count, abs=256)


def test_quantized_and_centred_by_default_within_a_step_of_float32(helpers):
    rng = np.random.default_rng(3)
    S, H, W = 2, 24, 24
    predictions = {
        "world_points": (rng.normal(size=(S, H, W, 3)) * [1, 2, 3] + [5, -4, 10]).astype(np.float32),
        "world_points_conf": rng.uniform(1, 2, (S, H, W)).astype(np.float32),
        "images": rng.uniform(0, 1, (S, 3, H, W)).astype(np.float32),
        "extrinsic": np.tile(np.eye(4, dtype=np.float32)[:3], (S, 1, 1)),
    }
    reference = glb_reader.nodes(export_glb(predictions, ExportOptions(show_cameras=True, **AS_REFERENCE)).glb)
    compact = export_glb(predictions, ExportOptions(show_cameras=True)).glb
    tree, _ = glb_reader.parse(compact)
    assert tree["extensionsRequired"] == ["KHR_mesh_quantization"]
    assert [node["name"] for node in tree["nodes"] if "children" in node] == ["scene"]  # the centring root
    shown = glb_reader.nodes(compact)
    offset = -np.median(reference["points"].vertices, axis=0)
    scale = VIEW_SIZE / scene_scale(reference["points"].vertices)
    np.testing.assert_allclose(np.median(shown["points"].vertices, axis=0), 0.0, atol=1e-3)  # centred
    assert scene_scale(shown["points"].vertices) == pytest.approx(VIEW_SIZE, rel=1e-3)  # fit to the app's camera
    for name, node in reference.items():
        extent = node.vertices.max(axis=0) - node.vertices.min(axis=0)
        step = scale * np.maximum(extent, 1e-9) / 2 / 32767
        placed = scale * (node.vertices + offset)
        assert np.all(np.abs(shown[name].vertices - placed) <= step + 1e-5), name  # within half a step
        np.testing.assert_array_equal(shown[name].colors, node.colors)


def test_the_default_cap_prefers_confident_points():
    rng = np.random.default_rng(4)
    S, H, W = 1, 100, 100
    conf = np.ones((S, H, W), np.float32)
    conf[:, :, W // 2 :] = 20.0  # the right half is confident
    predictions = {
        "world_points": rng.normal(size=(S, H, W, 3)).astype(np.float32),
        "world_points_conf": conf,
        "images": rng.uniform(0, 1, (S, 3, H, W)).astype(np.float32),
        "extrinsic": np.eye(4, dtype=np.float32)[None, :3],
    }
    options = ExportOptions(conf_percentile=0, max_points=1000, **AS_REFERENCE)
    kept = glb_reader.nodes(export_glb(predictions, options).glb)["points"].vertices
    right = {tuple(p) for p in np.round(-predictions["world_points"][0, :, W // 2 :].reshape(-1, 3) * [1, 1, -1], 4)}
    share = np.mean([tuple(p) in right for p in np.round(kept, 4)])
    assert 0.85 < share < 1.0  # mostly confident points, yet some of the rest: the structure stays
    assert ExportOptions().max_points == 800_000 and ExportOptions().downsample == "confidence"


def test_predictions_to_glb_keeps_its_public_signature():
    import inspect

    params = list(inspect.signature(predictions_to_glb).parameters)
    assert params == [
        "predictions", "conf_percentile", "source", "mask_black_bg", "mask_white_bg", "show_cameras", "frame",
    ]  # fmt: skip
