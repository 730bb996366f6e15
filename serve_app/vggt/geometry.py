"""Camera conventions: pose encoding -> extrinsics/intrinsics, depth unprojection.

Pose encoding "absT_quaR_FoV" (9 numbers): [t_x, t_y, t_z, q_x, q_y, q_z,
q_w, fov_h, fov_w]. Extrinsics are [R | t], camera-from-world, OpenCV axes
(x right, y down, z forward). Intrinsics are pinhole with the principal
point at the image centre: fy = (H/2) / tan(fov_h/2), fx = (W/2) / tan(fov_w/2).
"""

from __future__ import annotations

import numpy as np
import torch


def quat_to_mat(quat: torch.Tensor) -> torch.Tensor:
    """[..., 4] quaternions (x, y, z, w), any norm -> [..., 3, 3] rotation matrices."""
    x, y, z, w = quat.unbind(-1)
    s = 2.0 / (quat * quat).sum(-1)  # 2/|q|^2: q need not be unit length
    rows = (
        1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w),
        s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w),
        s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y),
    )  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*quat.shape[:-1], 3, 3)


def pose_encoding_to_extri_intri(
    pose_enc: torch.Tensor, image_size_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """pose_enc [..., 9] -> (extrinsic [..., 3, 4], intrinsic [..., 3, 3]); image_size_hw = (H, W)."""
    H, W = image_size_hw
    t, quat, fov_h, fov_w = pose_enc[..., :3], pose_enc[..., 3:7], pose_enc[..., 7], pose_enc[..., 8]
    extrinsic = torch.cat((quat_to_mat(quat), t[..., None]), dim=-1)
    intrinsic = torch.zeros(*pose_enc.shape[:-1], 3, 3, dtype=pose_enc.dtype, device=pose_enc.device)
    intrinsic[..., 0, 0] = (W / 2.0) / torch.tan(fov_w / 2.0)
    intrinsic[..., 1, 1] = (H / 2.0) / torch.tan(fov_h / 2.0)
    intrinsic[..., 0, 2] = W / 2
    intrinsic[..., 1, 2] = H / 2
    intrinsic[..., 2, 2] = 1.0
    return extrinsic, intrinsic


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def unproject_depth_map_to_point_map(depth, extrinsic, intrinsic) -> np.ndarray:
    """World points of every pixel: depth [S, H, W, 1] or [S, H, W], extrinsic [S, 3, 4]
    (camera-from-world), intrinsic [S, 3, 3] -> [S, H, W, 3] float32 (numpy).

    Pixel (u = column, v = row) with depth d maps to
    X_cam = ((u - cx) d / fx, (v - cy) d / fy, d), rounded to float32, then
    X_world = R^T X_cam - R^T t, evaluated in float64. Torch or numpy inputs.
    """
    depth, extrinsic, intrinsic = _numpy(depth), _numpy(extrinsic), _numpy(intrinsic)
    if depth.ndim == 4:
        if depth.shape[-1] != 1:
            raise ValueError(f"depth must be [S, H, W, 1] or [S, H, W], got {depth.shape}")
        depth = depth[..., 0]
    if depth.ndim != 3 or extrinsic.shape[-2:] != (3, 4) or intrinsic.shape[-2:] != (3, 3):
        raise ValueError(f"bad shapes: depth {depth.shape}, extrinsic {extrinsic.shape}, intrinsic {intrinsic.shape}")
    S, H, W = depth.shape
    u = np.arange(W)[None, :]  # [1, W] columns
    v = np.arange(H)[:, None]  # [H, 1] rows
    out = np.empty((S, H, W, 3), dtype=np.float32)
    for i in range(S):
        K, d = intrinsic[i], depth[i]
        fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
        x_cam = (u - cx) * d / fx  # float64 (integer grid - float32 scalar)
        y_cam = (v - cy) * d / fy
        cam = np.stack((x_cam, y_cam, np.broadcast_to(d, (H, W))), axis=-1).astype(np.float32)  # [H, W, 3]
        R, t = extrinsic[i, :, :3], extrinsic[i, :, 3:]
        r_c2w = R.T.astype(np.float64)
        t_c2w = (-(R.T @ t)).astype(np.float64)[:, 0]  # camera centre in world frame
        out[i] = cam @ r_c2w.T + t_c2w  # float64 math, stored as float32
    return out
