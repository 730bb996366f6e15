"""The inverse of the model's pose encoding, for round-trip tests of `serve_app.vggt.geometry`."""

from __future__ import annotations

import torch


def mat_to_quat(rot: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] rotation matrices -> [..., 4] unit quaternions (x, y, z, w), w >= 0.

    Of the four algebraically equivalent formulas the one with the largest
    denominator (|w|, |x|, |y| or |z| largest) is used for stability.
    """
    m = rot.reshape(*rot.shape[:-2], 9)
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = m.unbind(-1)
    # 4*q_i^2 for i = w, x, y, z
    four_sq = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), dim=-1
    )
    mag = four_sq.clamp(min=0).sqrt()  # 2*|q_i|
    # each row: (w, x, y, z) * 4*q_i, for the pivot i
    candidates = torch.stack(
        (
            torch.stack((four_sq[..., 0], m21 - m12, m02 - m20, m10 - m01), -1),
            torch.stack((m21 - m12, four_sq[..., 1], m10 + m01, m02 + m20), -1),
            torch.stack((m02 - m20, m10 + m01, four_sq[..., 2], m12 + m21), -1),
            torch.stack((m10 - m01, m20 + m02, m21 + m12, four_sq[..., 3]), -1),
        ),
        dim=-2,
    )  # [..., 4, 4]
    candidates = candidates / (2.0 * mag.clamp(min=0.1))[..., None]
    best = mag.argmax(dim=-1)  # [...]
    wxyz = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    xyzw = torch.cat((wxyz[..., 1:], wxyz[..., :1]), dim=-1)
    return torch.where(xyzw[..., 3:] < 0, -xyzw, xyzw)


def extri_intri_to_pose_encoding(
    extrinsic: torch.Tensor, intrinsic: torch.Tensor, image_size_hw: tuple[int, int]
) -> torch.Tensor:
    """(extrinsic [..., 3, 4], intrinsic [..., 3, 3]) -> pose_enc [..., 9] float32."""
    H, W = image_size_hw
    quat = mat_to_quat(extrinsic[..., :3, :3])
    fov_h = 2 * torch.atan((H / 2) / intrinsic[..., 1, 1])
    fov_w = 2 * torch.atan((W / 2) / intrinsic[..., 0, 0])
    return torch.cat((extrinsic[..., :3, 3], quat, fov_h[..., None], fov_w[..., None]), dim=-1).float()
