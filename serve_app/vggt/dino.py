"""DINOv2 ViT (with register tokens) used as the per-frame patch embedding."""

from __future__ import annotations

import torch
from torch import nn

from .layers import Block
from .layers.position_embedding import resize_dino_pos_embed


class PatchEmbed(nn.Module):
    """Non-overlapping patch x patch conv: [N, 3, H, W] -> [N, h*w, C]."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [N, h*w, C]


class DinoViT(nn.Module):
    """Tokens [cls, registers, patches] through pre-norm blocks and a final LayerNorm.

    Only the normalised patch tokens are returned. Position embeddings go
    on cls and patches, not on the registers (inserted after the addition).
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        num_register_tokens: int,
        token_chunk: int | None = None,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)  # unused; in checkpoint
        self.blocks = nn.ModuleList(
            [
                Block(embed_dim, num_heads, mlp_ratio, norm_eps=1e-6, init_values=1.0, token_chunk=token_chunk)
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.num_register_tokens = num_register_tokens
        for p in (self.cls_token, self.register_tokens):
            nn.init.normal_(p, std=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, 3, H, W] (normalised) -> patch tokens [N, h*w, C]."""
        n, _, H, W = x.shape
        tokens = self.patch_embed(x)  # [N, h*w, C]
        tokens = torch.cat((self.cls_token.expand(n, -1, -1), tokens), dim=1)  # [N, 1+h*w, C]
        pos = resize_dino_pos_embed(self.pos_embed, (H // self.patch_size, W // self.patch_size))
        tokens = tokens + pos.to(tokens.dtype)
        registers = self.register_tokens.expand(n, -1, -1)
        tokens = torch.cat((tokens[:, :1], registers, tokens[:, 1:]), dim=1)  # [N, 1+R+h*w, C]
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return tokens[:, 1 + self.num_register_tokens :]  # [N, h*w, C]
