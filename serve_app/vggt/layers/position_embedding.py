"""Fixed position embeddings: DINOv2 pos-embed resizing and the DPT UV sin/cos map."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def resize_dino_pos_embed(pos_embed: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Resize DINOv2's learned embedding to a patch grid of grid_hw = (h, w).

    pos_embed: [1, 1 + M*M, C] (cls entry, then an MxM grid, row-major).
    Returns [1, 1 + h*w, C] in pos_embed's dtype. The grid is resized with
    antialiased bicubic interpolation to an explicit size, in float32; it
    is returned unchanged when the grid is already MxM.
    """
    n = pos_embed.shape[1] - 1
    m = math.isqrt(n)
    if m * m != n:
        raise ValueError(f"pos_embed grid of {n} entries is not square")
    h, w = grid_hw
    if (h, w) == (m, m):
        return pos_embed
    dim = pos_embed.shape[-1]
    cls_part = pos_embed[:, :1].float()  # [1, 1, C]
    grid = pos_embed[:, 1:].float().reshape(1, m, m, dim).permute(0, 3, 1, 2)  # [1, C, M, M]
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", antialias=True)  # [1, C, h, w]
    grid = grid.permute(0, 2, 3, 1).reshape(1, h * w, dim)  # [1, h*w, C]
    return torch.cat((cls_part, grid), dim=1).to(pos_embed.dtype)


def _sincos_1d(coords: torch.Tensor, channels: int, omega_0: float = 100.0) -> torch.Tensor:
    """coords [M] -> [M, channels] = [sin(c*w_k), cos(c*w_k)], w_k = omega_0**(-k/(channels/2)), float64."""
    half = channels // 2
    k = torch.arange(half, dtype=torch.float64, device=coords.device) / half
    omega = 1.0 / omega_0**k  # [channels/2]
    angles = coords.to(torch.float64)[:, None] * omega[None, :]  # [M, channels/2]
    return torch.cat((angles.sin(), angles.cos()), dim=1)


def uv_embedding_axes(
    h: int, w: int, channels: int, aspect_ratio: float, dtype=torch.float32, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two factors of the UV position embedding: x part [channels/2, w], y part [channels/2, h].

    The embedding is separable: its first channels/2 channels depend on the
    column only, the rest on the row only. Each axis is evaluated once per
    coordinate (float64, then rounded to dtype), which gives exactly the
    values of evaluating every grid point.
    """
    if channels % 4:
        raise ValueError(f"UV embedding channels must be a multiple of 4, got {channels}")
    diag = math.sqrt(aspect_ratio**2 + 1.0)
    span_x, span_y = aspect_ratio / diag, 1.0 / diag
    xs = torch.linspace(-span_x * (w - 1) / w, span_x * (w - 1) / w, steps=w, dtype=dtype, device=device)
    ys = torch.linspace(-span_y * (h - 1) / h, span_y * (h - 1) / h, steps=h, dtype=dtype, device=device)
    emb_x = _sincos_1d(xs, channels // 2).float().to(dtype).t()  # [C/2, w]
    emb_y = _sincos_1d(ys, channels // 2).float().to(dtype).t()  # [C/2, h]
    return emb_x, emb_y
