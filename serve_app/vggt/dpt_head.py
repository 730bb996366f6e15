"""DPT head: four aggregator layers -> a dense per-pixel prediction.

Each level: LayerNorm, 1x1 projection, UV position embedding, resize to
4x / 2x / 1x / 0.5x of the patch grid, 3x3 conv to `features` channels.
The levels are fused coarse to fine (RefineNet-style), upsampled to the
image size and turned into values + a confidence by an activation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers.position_embedding import uv_embedding_axes


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize with align_corners=True (what the checkpoint was trained with)."""
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


def add_uv_embedding_(x: torch.Tensor, image_hw: tuple[int, int], ratio: float = 0.1) -> torch.Tensor:
    """x [N, C, h, w] += ratio * UV sin/cos embedding (aspect ratio of the image), in place.

    The embedding is added one axis at a time, broadcast from its [C/2, w] and
    [C/2, h] factors, so the full [C, h, w] map is never built (at the output
    resolution that is 128 x H x W floats, plus float64 temporaries); the sums
    are the same as adding the full map. In place because every caller owns a
    fresh map: at the output resolution a copy would be the largest tensor of
    the head (128 x H x W floats per frame).
    """
    H, W = image_hw
    emb_x, emb_y = uv_embedding_axes(x.shape[-2], x.shape[-1], x.shape[1], W / H, dtype=x.dtype, device=x.device)
    half = emb_x.shape[0]
    x[:, :half] += (emb_x * ratio)[:, None, :]  # x channels vary along the width
    x[:, half:] += (emb_y * ratio)[:, :, None]  # y channels vary along the height
    return x


class ResidualConvUnit(nn.Module):
    """relu -> conv -> relu -> conv, plus the skip.

    The skip is relu(x), not x: the released VGGT-1B weights were trained
    with an in-place ReLU that overwrote the unit's input before the add.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    """(x + unit1(skip)) -> unit2 -> bilinear resize -> 1x1 conv."""

    def __init__(self, features: int, has_skip: bool = True) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, 1)
        if has_skip:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            size = (2 * x.shape[-2], 2 * x.shape[-1])
        return self.out_conv(upsample(x, size))


class DPTHead(nn.Module):
    """activation "exp" (depth) or "inv_log" (points); confidence is 1 + exp(c)."""

    def __init__(
        self,
        dim_in: int,
        output_dim: int,
        activation: str,
        patch_size: int,
        features: int,
        out_channels: tuple[int, ...],
        hidden: int,
    ) -> None:
        """Sizes come from VGGTConfig (patch_size, dpt_features, dpt_out_channels, dpt_hidden)."""
        super().__init__()
        if activation not in ("exp", "inv_log"):
            raise ValueError(f"unknown activation {activation!r}")
        self.activation = activation
        self.patch_size = patch_size
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList([nn.Conv2d(dim_in, c, 1) for c in out_channels])
        c0, c1, _, c3 = out_channels
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c0, c0, kernel_size=4, stride=4),  # x4
                nn.ConvTranspose2d(c1, c1, kernel_size=2, stride=2),  # x2
                nn.Identity(),  # x1
                nn.Conv2d(c3, c3, kernel_size=3, stride=2, padding=1),  # x0.5
            ]
        )
        self.scratch = nn.Module()
        for i, c in enumerate(out_channels, start=1):
            setattr(self.scratch, f"layer{i}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        self.scratch.refinenet1 = FusionBlock(features)
        self.scratch.refinenet2 = FusionBlock(features)
        self.scratch.refinenet3 = FusionBlock(features)
        self.scratch.refinenet4 = FusionBlock(features, has_skip=False)
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, hidden, 3, padding=1),
            nn.ReLU(inplace=True),  # on the conv's fresh output: one full-resolution map less
            nn.Conv2d(hidden, output_dim, 1),
        )

    def forward(
        self, layers: list[torch.Tensor], image_hw: tuple[int, int], patch_start_idx: int, chunk_frames: int = 8
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """layers: 4 x [B, S, P, 2C] -> (values [B, S, H, W, C-1], conf [B, S, H, W]).

        Frames are processed `chunk_frames` at a time (memory only; the
        numbers do not depend on it). Layers in another dtype than the head's
        weights (bf16 aggregator weights) are cast one chunk at a time.
        """
        B, S = layers[0].shape[:2]
        dtype = self.norm.weight.dtype
        values, confs = [], []
        for start in range(0, S, chunk_frames):
            chunk = [t[:, start : start + chunk_frames, patch_start_idx:].to(dtype) for t in layers]  # [B, s, h*w, 2C]
            v, c = self._forward_frames(chunk, image_hw)
            values.append(v)
            confs.append(c)
        return torch.cat(values, dim=1), torch.cat(confs, dim=1)

    def _forward_frames(self, layers: list[torch.Tensor], image_hw: tuple[int, int]):
        B, s, n, dim = layers[0].shape
        H, W = image_hw
        h, w = H // self.patch_size, W // self.patch_size
        feats = []
        for x, project, resize in zip(layers, self.projects, self.resize_layers):
            x = self.norm(x.reshape(B * s, n, dim))  # [N, h*w, 2C]
            x = x.permute(0, 2, 1).reshape(B * s, dim, h, w)  # [N, 2C, h, w]
            x = add_uv_embedding_(project(x), image_hw)  # [N, c_i, h, w]
            feats.append(resize(x))
        sc = self.scratch
        l1, l2 = sc.layer1_rn(feats[0]), sc.layer2_rn(feats[1])  # [N, F, 4h, 4w], [N, F, 2h, 2w]
        l3, l4 = sc.layer3_rn(feats[2]), sc.layer4_rn(feats[3])  # [N, F, h, w], [N, F, h/2, w/2]
        del feats
        out = sc.refinenet4(l4, size=l3.shape[-2:])
        out = sc.refinenet3(out, l3, size=l2.shape[-2:])
        out = sc.refinenet2(out, l2, size=l1.shape[-2:])
        out = sc.refinenet1(out, l1)  # x2
        out = sc.output_conv1(out)  # [N, F/2, 8h, 8w]
        out = upsample(out, (h * self.patch_size, w * self.patch_size))  # [N, F/2, H, W]
        out = add_uv_embedding_(out, image_hw)
        out = sc.output_conv2(out).permute(0, 2, 3, 1)  # [N, H, W, out_dim]
        raw, conf = out[..., :-1], out[..., -1]
        if self.activation == "exp":
            values = torch.exp(raw)
        else:  # inv_log: sign(y) * (exp|y| - 1)
            values = torch.sign(raw) * torch.expm1(raw.abs())
        conf = 1 + conf.exp()
        return values.reshape(B, s, H, W, -1), conf.reshape(B, s, H, W)
