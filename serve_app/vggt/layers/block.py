"""Pre-norm transformer block: x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x)))."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention
from .layer_scale import LayerScale
from .mlp import Mlp

Rope = tuple[torch.Tensor, torch.Tensor]


class Block(nn.Module):
    """Attention then MLP, each pre-normed, LayerScaled and added to the residual stream.

    `token_chunk`: when a call has more tokens (B*N) than this, everything but
    the attention itself (norms, projections, RoPE, MLP) runs on slices of the
    tokens, so only q, k, v, the attention output and the residual stream are
    ever whole. Same numbers up to float rounding; None never slices.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
        init_values: float = 0.01,
        token_chunk: int | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=True, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values)
        self.token_chunk = token_chunk

    def forward(self, x: torch.Tensor, rope: Rope | None = None) -> torch.Tensor:
        B, N, _ = x.shape  # [B, N, C]
        if self.token_chunk is not None and B * N > self.token_chunk:
            return self._forward_sliced(x, rope, max(1, self.token_chunk // B))
        x = x + self.ls1(self.attn(self.norm1(x), rope=rope))
        return x + self.ls2(self.mlp(self.norm2(x)))

    def _forward_sliced(self, x: torch.Tensor, rope: Rope | None, step: int) -> torch.Tensor:
        """forward() with the token-wise work done `step` tokens (of every sample) at a time."""
        B, N, C = x.shape
        slices = [slice(i, i + step) for i in range(0, N, step)]
        q = k = v = None
        for sl in slices:
            part = None if rope is None else (rope[0][..., sl, :], rope[1][..., sl, :])
            qkv = self.attn.heads(self.norm1(x[:, sl]), rope=part)  # 3 x [B, heads, n, D]
            if q is None:  # held in the dtype attention computes in: no whole-size float32 copy
                dtype = attention_dtype(qkv[0])
                q, k, v = (x.new_empty(B, self.attn.num_heads, N, self.attn.head_dim, dtype=dtype) for _ in qkv)
            q[:, :, sl], k[:, :, sl], v[:, :, sl] = qkv
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)  # [B, N, heads, D]
        del q, k, v
        x = add_sliced(x, slices, lambda xs, sl: self.ls1(self.attn.proj(out[:, sl].reshape(B, -1, C))))
        del out
        return add_sliced(x, slices, lambda xs, sl: self.ls2(self.mlp(self.norm2(xs))))


def attention_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype scaled_dot_product_attention computes in for `t`: autocast's, when it is on."""
    device = t.device.type
    if torch.is_autocast_enabled(device) and t.is_floating_point():
        return torch.get_autocast_dtype(device)
    return t.dtype


def add_sliced(
    x: torch.Tensor, slices: list[slice], branch: Callable[[torch.Tensor, slice], torch.Tensor]
) -> torch.Tensor:
    """x + branch(x) [B, N, C], computed over the token slices into one new tensor."""
    y = None
    for sl in slices:
        part = x[:, sl] + branch(x[:, sl], sl)  # [B, n, C]
        if y is None:
            y = x.new_empty(x.shape, dtype=part.dtype)
        y[:, sl] = part
    return y
