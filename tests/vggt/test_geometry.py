"""Pose encoding round trips and depth unprojection on hand-checkable cameras."""

import math

import numpy as np
import pytest
import torch

from pose_encoding import extri_intri_to_pose_encoding, mat_to_quat

from serve_app.vggt.geometry import pose_encoding_to_extri_intri, quat_to_mat, unproject_depth_map_to_point_map


def random_pose_enc(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(*shape, 3, generator=g)
    q = torch.nn.functional.normalize(torch.randn(*shape, 4, generator=g), dim=-1)
    q = torch.where(q[..., 3:] < 0, -q, q)  # canonical sign: w >= 0
    fov = 0.3 + 1.5 * torch.rand(*shape, 2, generator=g)  # radians, inside (0, pi)
    return torch.cat((t, q, fov), dim=-1)


@pytest.mark.parametrize("shape", [(5,), (2, 3)])
def test_pose_encoding_round_trip(shape):
    enc = random_pose_enc(shape)
    extri, intri = pose_encoding_to_extri_intri(enc, (120, 200))
    assert extri.shape == (*shape, 3, 4) and intri.shape == (*shape, 3, 3)
    back = extri_intri_to_pose_encoding(extri, intri, (120, 200))
    assert torch.allclose(back, enc, atol=2e-5)
    extri2, intri2 = pose_encoding_to_extri_intri(back, (120, 200))
    assert torch.allclose(extri2, extri, atol=2e-5) and torch.allclose(intri2, intri, rtol=1e-5)


def test_intrinsics_layout_fov_h_goes_with_height():
    enc = torch.tensor([[0, 0, 0, 0, 0, 0, 1, math.pi / 2, 2 * math.atan(0.5)]])  # fov_h 90 deg
    extri, intri = pose_encoding_to_extri_intri(enc, (100, 200))  # (H, W)
    expected = torch.tensor([[200.0, 0, 100], [0, 50, 50], [0, 0, 1]])  # fx = 100/tan(atan(0.5)), fy = 50/tan(pi/4)
    assert torch.allclose(intri[0], expected, atol=1e-4)
    assert torch.allclose(extri[0], torch.eye(3, 4), atol=1e-7)


def test_rotations_are_proper_and_scale_free():
    q = random_pose_enc((16,))[:, 3:7]
    R = quat_to_mat(q)
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand(16, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(16), atol=1e-5)
    assert torch.allclose(quat_to_mat(3.0 * q), R, atol=1e-5)  # 2/|q|^2: any norm gives the same R
    # a 90 degree turn about z maps x to y (xyzw quaternion, scalar last)
    qz = torch.tensor([0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)])
    assert torch.allclose(quat_to_mat(qz) @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)


def test_mat_to_quat_half_turns_and_sign():
    half_x = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    assert torch.allclose(mat_to_quat(half_x), torch.tensor([1.0, 0, 0, 0]), atol=1e-6)
    q = mat_to_quat(quat_to_mat(torch.tensor([0.1, -0.2, 0.3, -0.9])))
    assert q[3] > 0  # standardised to w >= 0
    assert torch.allclose(q, -torch.nn.functional.normalize(torch.tensor([0.1, -0.2, 0.3, -0.9]), dim=0), atol=1e-6)


def test_unproject_identity_camera_by_hand():
    H, W = 3, 5
    depth = np.full((1, H, W, 1), 2.0, dtype=np.float32)
    depth[0, 2, 4, 0] = 4.0
    extri = np.eye(3, 4, dtype=np.float32)[None]
    intri = np.array([[[10.0, 0, 2.5], [0, 20.0, 1.5], [0, 0, 1]]], dtype=np.float32)
    pts = unproject_depth_map_to_point_map(depth, extri, intri)
    assert pts.shape == (1, H, W, 3) and pts.dtype == np.float32
    # pixel (u=4 column, v=2 row), depth 4: ((4-2.5)*4/10, (2-1.5)*4/20, 4)
    assert np.allclose(pts[0, 2, 4], [0.6, 0.1, 4.0], atol=1e-6)
    assert np.allclose(pts[0, 0, 0], [-0.5, -0.15, 2.0], atol=1e-6)


def test_unproject_moved_camera_and_reprojection():
    # camera-from-world: rotate 90 degrees about z, then translate
    R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32)
    t = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    extri = np.concatenate([R, t[:, None]], axis=1)[None]
    intri = np.array([[[50.0, 0, 4], [0, 40.0, 3], [0, 0, 1]]], dtype=np.float32)
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 5, size=(1, 6, 8)).astype(np.float32)  # [S, H, W] also accepted
    pts = unproject_depth_map_to_point_map(torch.from_numpy(depth), torch.from_numpy(extri), intri)
    # pixel (u=0, v=0): camera point then world = R^T (X_cam - t)
    d = depth[0, 0, 0]
    cam = np.array([(0 - 4) * d / 50, (0 - 3) * d / 40, d])
    assert np.allclose(pts[0, 0, 0], R.T @ (cam - t), atol=1e-5)
    # projecting every world point back lands on its own pixel at its own depth
    cam_all = pts[0] @ R.T + t  # [H, W, 3]
    uv = cam_all @ intri[0].T
    v, u = np.mgrid[0:6, 0:8]
    assert np.allclose(uv[..., 0] / uv[..., 2], u, atol=1e-4)
    assert np.allclose(uv[..., 1] / uv[..., 2], v, atol=1e-4)
    assert np.allclose(cam_all[..., 2], depth[0], atol=1e-5)


def test_unproject_rejects_bad_shapes():
    with pytest.raises(ValueError):
        unproject_depth_map_to_point_map(np.ones((1, 4, 4, 2)), np.eye(3, 4)[None], np.eye(3)[None])
