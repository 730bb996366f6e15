"""Alternating-attention aggregator: DINO patch tokens -> multi-view tokens.

Each frame gets tokens [camera (1), registers (R), patches (h*w)]. Then
`depth` layers each run a frame block (attention inside one frame) and a
global block (attention over all frames of a sample). The output of layer
i is concat(frame-block output, global-block output) on channels; only the
layers the heads read are kept.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import VGGTConfig
from .dino import DinoViT
from .layers import Block, RotaryEmbedding2D

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def patch_positions(h: int, w: int, num_special: int, device=None) -> torch.Tensor:
    """RoPE positions of one frame's tokens: [num_special + h*w, 2] (row, col).

    Special tokens sit at (0, 0), i.e. no rotation; the patch at grid
    (i, j) sits at (i + 1, j + 1), row-major.
    """
    rows = torch.arange(h, device=device).repeat_interleave(w)  # [h*w]
    cols = torch.arange(w, device=device).repeat(h)  # [h*w]
    patches = torch.stack((rows, cols), dim=-1) + 1  # [h*w, 2]
    special = torch.zeros(num_special, 2, dtype=patches.dtype, device=device)
    return torch.cat((special, patches), dim=0)


def first_and_rest(tokens: torch.Tensor, B: int, S: int) -> torch.Tensor:
    """[1, 2, X, C] learned tokens -> [B*S, X, C]: set 0 for frame 0, set 1 for the others."""
    first = tokens[:, :1].expand(B, 1, *tokens.shape[2:])
    rest = tokens[:, 1:].expand(B, S - 1, *tokens.shape[2:])
    return torch.cat((first, rest), dim=1).reshape(B * S, *tokens.shape[2:])


class Aggregator(nn.Module):
    """DINO patch embedding + `depth` x (frame block, global block) with 2D RoPE."""

    def __init__(self, cfg: VGGTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        C = cfg.embed_dim
        self.patch_embed = DinoViT(
            img_size=cfg.img_size,
            patch_size=cfg.patch_size,
            embed_dim=C,
            depth=cfg.dino_depth,
            num_heads=cfg.dino_num_heads,
            mlp_ratio=cfg.mlp_ratio,
            num_register_tokens=cfg.num_register_tokens,
            token_chunk=cfg.token_chunk,
        )
        # two sets: index 0 for the first (reference) frame, index 1 for all others
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, C) * 1e-6)
        self.register_token = nn.Parameter(torch.randn(1, 2, cfg.num_register_tokens, C) * 1e-6)

        def make_blocks() -> nn.ModuleList:
            return nn.ModuleList(
                [
                    Block(C, cfg.num_heads, cfg.mlp_ratio, qk_norm=True, norm_eps=1e-5, token_chunk=cfg.token_chunk)
                    for _ in range(cfg.depth)
                ]
            )

        self.frame_blocks = make_blocks()
        self.global_blocks = make_blocks()
        self.rope = RotaryEmbedding2D(C // cfg.num_heads, base=cfg.rope_base)
        self.patch_start_idx = cfg.patch_start_idx
        # layers forward() returns; the rest are dropped as soon as the next layer ran
        # (scripts/bench_vggt.py widens this to every layer for its naive baseline)
        self.cached_layers: tuple[int, ...] = cfg.cached_layers

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:
        """images [B, S, 3, H, W] in [0, 1] -> {layer: tokens [B, S, P, 2C]} for self.cached_layers."""
        B, S, _, H, W = images.shape
        h, w = H // self.cfg.patch_size, W // self.cfg.patch_size
        mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 1, 3, 1, 1)
        x = ((images - mean) / std).reshape(B * S, 3, H, W)
        x = x.to(self.patch_embed.patch_embed.proj.weight.dtype)
        patches = self.patch_embed(x)  # [B*S, h*w, C]

        camera = first_and_rest(self.camera_token, B, S).to(patches.dtype)  # [B*S, 1, C]
        registers = first_and_rest(self.register_token, B, S).to(patches.dtype)  # [B*S, R, C]
        tokens = torch.cat((camera, registers, patches), dim=1)  # [B*S, P, C]
        P, C = tokens.shape[1], tokens.shape[2]

        pos = patch_positions(h, w, self.patch_start_idx, device=images.device)  # [P, 2]
        cos, sin = self.rope(pos)  # [P, D] each
        frame_rope = (cos, sin)  # same positions for every frame
        global_rope = (cos.repeat(S, 1), sin.repeat(S, 1))  # [S*P, D]: frames share positions

        keep = set(self.cached_layers)
        outputs: dict[int, torch.Tensor] = {}
        for i in range(self.cfg.depth):
            per_kind = {}
            for kind in self.cfg.aa_order:
                if kind == "frame":
                    tokens = self.frame_blocks[i](tokens.reshape(B * S, P, C), rope=frame_rope)
                else:
                    tokens = self.global_blocks[i](tokens.reshape(B, S * P, C), rope=global_rope)
                if i in keep:
                    per_kind[kind] = tokens.reshape(B, S, P, C)
            if i in keep:
                outputs[i] = torch.cat((per_kind["frame"], per_kind["global"]), dim=-1)  # [B, S, P, 2C]
        return outputs
