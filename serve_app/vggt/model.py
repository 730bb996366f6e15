"""VGGT: frames in, cameras + depth maps + point maps out."""

from __future__ import annotations

import torch
from torch import nn

from .aggregator import Aggregator
from .camera_head import CameraHead
from .config import VGGTConfig, preset
from .dpt_head import DPTHead


class VGGT(nn.Module):
    """Visual Geometry Grounded Transformer (no point-tracking head).

    `VGGT()` is VGGT-1B; `VGGT(VGGTConfig.tiny())` or `VGGT("tiny")` is the
    small test model. State-dict keys match the public checkpoint.
    """

    def __init__(self, config: VGGTConfig | str | None = None) -> None:
        super().__init__()
        if config is None:
            config = VGGTConfig()
        elif isinstance(config, str):
            config = preset(config)
        self.config = config  # replaced as a whole to change head_chunk_frames after loading
        self.aggregator = Aggregator(config)
        dim = 2 * config.embed_dim
        self.camera_head = CameraHead(
            dim, config.camera_trunk_depth, config.camera_num_heads, config.mlp_ratio, config.camera_iterations
        )
        dpt = dict(
            patch_size=config.patch_size,
            features=config.dpt_features,
            out_channels=config.dpt_out_channels,
            hidden=config.dpt_hidden,
        )
        self.point_head = DPTHead(dim, output_dim=4, activation="inv_log", **dpt)
        self.depth_head = DPTHead(dim, output_dim=2, activation="exp", **dpt)

    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """Validate and return images as [B, S, 3, H, W]."""
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
        if images.dim() == 4:
            images = images.unsqueeze(0)
        if images.dim() != 5:
            raise ValueError(f"images must be [S, 3, H, W] or [B, S, 3, H, W], got shape {tuple(images.shape)}")
        B, S, C, H, W = images.shape
        p = self.config.patch_size
        if C != 3:
            raise ValueError(f"images must have 3 channels (RGB) in dim -3, got shape {tuple(images.shape)}")
        if B < 1 or S < 1 or H < p or W < p or H % p or W % p:
            raise ValueError(
                f"image height and width must be positive multiples of {p}, got {H}x{W} "
                f"(shape {tuple(images.shape)})"
            )
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}")
        return images

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """images [S, 3, H, W] or [B, S, 3, H, W] in [0, 1] -> dict of predictions.

        pose_enc [B, S, 9], pose_enc_list (camera_iterations x [B, S, 9]),
        depth [B, S, H, W, 1], depth_conf [B, S, H, W], world_points
        [B, S, H, W, 3], world_points_conf [B, S, H, W], all float32; in eval
        mode also `images` [B, S, 3, H, W]. The aggregator may run under
        autocast; the heads run with autocast disabled, in float32 (or in
        the dtype the caller cast the heads to; outputs are float32 anyway).
        """
        images = self.check_images(images)
        B, S, _, H, W = images.shape
        layers = self.aggregator(images)  # {layer: [B, S, P, 2C]}
        start = self.aggregator.patch_start_idx
        cfg = self.config
        head_dtype = self.depth_head.norm.weight.dtype  # float32 unless the caller cast the heads
        with torch.autocast(device_type=images.device.type, enabled=False):
            camera_tokens = layers[cfg.depth - 1][:, :, :1].to(head_dtype)  # [B, S, 1, 2C]: the camera token
            dpt_inputs = [layers[i] for i in cfg.keep_layers]  # cast to the head dtype chunk by chunk
            del layers
            pose_enc_list = [p.float() for p in self.camera_head(camera_tokens)]
            depth, depth_conf = self.depth_head(dpt_inputs, (H, W), start, cfg.head_chunk_frames)
            points, points_conf = self.point_head(dpt_inputs, (H, W), start, cfg.head_chunk_frames)
        out = {
            "pose_enc": pose_enc_list[-1],
            "pose_enc_list": pose_enc_list,
            "depth": depth.float(),
            "depth_conf": depth_conf.float(),
            "world_points": points.float(),
            "world_points_conf": points_conf.float(),
        }
        if not self.training:
            out["images"] = images
        return out
