"""2D rotary position embedding (RoPE) for patch tokens.

A head of D channels is split in two halves: the first half is rotated by
the token's row, the second by its column. Inside each half the
"rotate-half" layout is used: channel k pairs with channel k + D/4, and
both share the frequency base ** (-2k / (D/2)), k < D/4. Position (0, 0)
is the identity (the camera and register tokens use it).
"""

from __future__ import annotations

import torch


class RotaryEmbedding2D:
    """Builds the cos/sin tables for a set of (row, col) positions."""

    def __init__(self, head_dim: int, base: float = 100.0) -> None:
        if head_dim % 4:
            raise ValueError(f"2D RoPE needs head_dim divisible by 4, got {head_dim}")
        self.head_dim = head_dim
        self.base = base

    def inv_freq(self, device=None) -> torch.Tensor:
        """[D/4] float32 frequencies of one axis."""
        axis_dim = self.head_dim // 2
        exponents = torch.arange(0, axis_dim, 2, device=device).float() / axis_dim
        return 1.0 / (self.base**exponents)

    def __call__(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pos [..., N, 2] integer (row, col) -> (cos, sin), each [..., N, D] float32."""
        inv_freq = self.inv_freq(pos.device)  # [D/4]
        rows = pos[..., 0:1].float() * inv_freq  # [..., N, D/4]
        cols = pos[..., 1:2].float() * inv_freq  # [..., N, D/4]
        angles = torch.cat((rows, rows, cols, cols), dim=-1)  # [..., N, D]
        return angles.cos(), angles.sin()


def _rotate_halves(x: torch.Tensor) -> torch.Tensor:
    """Per axis half [a, b] -> [-b, a] (quarters q0..q3 -> -q1, q0, -q3, q2)."""
    q0, q1, q2, q3 = x.chunk(4, dim=-1)
    return torch.cat((-q1, q0, -q3, q2), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, heads, N, D]; cos, sin broadcastable to it ([N, D] or [B, 1, N, D])."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + _rotate_halves(x) * sin
