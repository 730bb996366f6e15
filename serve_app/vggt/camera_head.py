"""Camera head: iterative refinement of a 9-number pose encoding per frame.

Encoding "absT_quaR_FoV": [t (3), quaternion xyzw (4), fov_h, fov_w].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import Block, Mlp

POSE_DIM = 9


def activate_pose(raw: torch.Tensor) -> torch.Tensor:
    """Translation and quaternion stay linear; the two FoVs go through ReLU."""
    return torch.cat((raw[..., :7], F.relu(raw[..., 7:])), dim=-1)


class CameraHead(nn.Module):
    """Refines a pose encoding from the camera tokens in `iterations` steps.

    Every step starts from the same normalised camera token, modulated
    (adaLN: shift, scale, gate) by an embedding of the current raw estimate,
    runs the trunk across frames and adds a predicted delta.
    """

    def __init__(
        self, dim: int, trunk_depth: int, num_heads: int, mlp_ratio: float = 4.0, iterations: int = 4
    ) -> None:
        super().__init__()
        self.iterations = iterations
        self.trunk = nn.Sequential(*[Block(dim, num_heads, mlp_ratio) for _ in range(trunk_depth)])
        self.token_norm = nn.LayerNorm(dim)
        self.trunk_norm = nn.LayerNorm(dim)
        self.empty_pose_tokens = nn.Parameter(torch.zeros(1, 1, POSE_DIM))  # input of the first step
        self.embed_pose = nn.Linear(POSE_DIM, dim)
        # adaLN conditioning on the current pose: shift, scale, gate
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 3 * dim))
        self.adaln_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(dim, dim // 2, POSE_DIM)

    def forward(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """tokens [B, S, P, 2C] (last aggregator layer) -> list of `iterations` x [B, S, 9].

        Only the camera token (P index 0) is read, so [B, S, 1, 2C] will do.
        """
        x = self.token_norm(tokens[:, :, 0])  # camera token, [B, S, 2C]
        B, S, _ = x.shape
        x_normed = self.adaln_norm(x)
        raw = None  # running sum of deltas, fed back without activation
        outputs = []
        for _ in range(self.iterations):
            cond = self.empty_pose_tokens.expand(B, S, -1) if raw is None else raw.detach()
            shift, scale, gate = self.poseLN_modulation(self.embed_pose(cond)).chunk(3, dim=-1)
            m = gate * (x_normed * (1 + scale) + shift) + x  # [B, S, 2C]
            m = self.trunk(m)  # attention across the S frames
            delta = self.pose_branch(self.trunk_norm(m))  # [B, S, 9]
            raw = delta if raw is None else raw + delta
            outputs.append(activate_pose(raw))
        return outputs
