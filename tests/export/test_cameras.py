"""gist_rainbow colours and the camera marker geometry."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.export.cameras import camera_colors, frustum_mesh, gist_rainbow


def test_gist_rainbow_known_values():
    assert gist_rainbow(0.0) == (1.0, 0.0, 0.16)
    assert gist_rainbow(1.0) == (1.0, 0.0, 0.75)
    r, g, b = gist_rainbow(0.5)  # table entry 128, between green (0.400) and cyan (0.586)
    assert (r, g) == (0.0, 1.0)
    assert b == pytest.approx((128 / 255 - 0.4) / 0.186)


def test_camera_colours_follow_the_sampled_table():
    # values of the usual 256-entry gist_rainbow table, truncated to bytes
    assert camera_colors(1) == [(255, 0, 40)]
    assert camera_colors(3) == [(255, 0, 40), (91, 255, 0), (0, 143, 255)]
    assert camera_colors(7) == [
        (255, 0, 40),
        (255, 153, 0),
        (156, 255, 0),
        (0, 255, 37),
        (0, 255, 236),
        (0, 77, 255),
        (123, 0, 255),
    ]
    # a case sensitive to rounding in the table: 110/255 of the way is just under an integer
    assert camera_colors(9)[1] == (255, 110, 0)


def test_marker_in_camera_frame():
    mesh = frustum_mesh(np.eye(4), (1, 2, 3), scene_scale=10.0)
    depth, radius = 1.0, 0.5
    v = mesh.vertices
    assert len(v) == 5 and len(mesh.faces) == 12  # 4 sides + 2 base triangles, both windings
    corners3 = v[mesh.faces]  # [12, 3, 3]
    areas = np.linalg.norm(np.cross(corners3[:, 1] - corners3[:, 0], corners3[:, 2] - corners3[:, 0]), axis=1) / 2
    assert areas.min() > 0.1 * radius**2  # solid: no slivers
    assert sorted(map(tuple, mesh.faces[:6])) == sorted(tuple(f[::-1]) for f in mesh.faces[6:])  # both windings
    assert any(np.allclose(p, 0) for p in v)  # tip at the camera centre
    corners = v[np.isclose(v[:, 2], depth) & np.isclose(np.hypot(v[:, 0], v[:, 1]), radius)]
    half = radius / np.sqrt(2)  # square base turned 45 degrees: edges parallel to the image axes
    expected = {(sx * half, sy * half) for sx in (-1, 1) for sy in (-1, 1)}
    found = {(round(x, 6), round(y, 6)) for x, y in corners[:, :2]}
    assert {(round(x, 6), round(y, 6)) for x, y in expected} <= found
    assert v[:, 2].min() == pytest.approx(0) and v[:, 2].max() == pytest.approx(depth)
    np.testing.assert_array_equal(mesh.colors, np.tile([1, 2, 3], (len(v), 1)))


def test_marker_follows_the_camera_pose():
    camera_to_world = np.eye(4)
    camera_to_world[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # looks along world +x
    camera_to_world[:3, 3] = [1, 2, 3]
    v = frustum_mesh(camera_to_world, (0, 0, 0), scene_scale=1.0).vertices
    assert v[:, 0].min() == pytest.approx(1.0) and v[:, 0].max() == pytest.approx(1.1)
