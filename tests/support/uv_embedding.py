"""The UV position embedding as one full [channels, h, w] map: the reference the DPT heads'
two-axis form is checked against (tests/vggt/test_position_embedding.py)."""

from __future__ import annotations

import torch

from serve_app.vggt.layers.position_embedding import uv_embedding_axes


def uv_position_embedding(
    h: int, w: int, channels: int, aspect_ratio: float, dtype=torch.float32, device=None
) -> torch.Tensor:
    """Sin/cos embedding of a normalised UV grid for an h x w feature map.

    The grid spans +-(a/diag)(w-1)/w horizontally and +-(1/diag)(h-1)/h
    vertically (a = image W/H, diag = sqrt(a^2+1)), sampled in `dtype`.
    Half of the channels encode x, half y. Returns [channels, h, w] in dtype.
    """
    emb_x, emb_y = uv_embedding_axes(h, w, channels, aspect_ratio, dtype=dtype, device=device)
    half = channels // 2
    return torch.cat((emb_x[:, None, :].expand(half, h, w), emb_y[:, :, None].expand(half, h, w)), dim=0)
