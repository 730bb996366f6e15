"""Model hyper-parameters: one frozen dataclass and two presets.

`VGGTConfig()` is VGGT-1B, the architecture of the public facebook/VGGT-1B
checkpoint. `VGGTConfig.tiny()` runs the same code paths with a handful of
layers and a small width (untrained; for tests and demos).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

PRESETS = ("vggt-1b", "tiny")


@dataclass(frozen=True)
class VGGTConfig:
    # --- input / DINOv2 patch embedding ---
    img_size: int = 518  # training resolution: DINO pos_embed is a 37x37 grid
    patch_size: int = 14  # DINOv2 ViT-L/14; H and W must be multiples of this
    embed_dim: int = 1024  # token width of DINO and of the aggregator blocks
    num_register_tokens: int = 4  # DINOv2 "with registers"; also aggregator registers
    dino_depth: int = 24  # ViT-L has 24 blocks
    dino_num_heads: int = 16  # ViT-L: 16 heads of 64
    # --- alternating-attention aggregator ---
    depth: int = 24  # number of (frame block, global block) pairs
    num_heads: int = 16  # 16 heads of 64 channels
    mlp_ratio: float = 4.0  # MLP hidden = 4 * width everywhere
    aa_order: tuple[str, ...] = ("frame", "global")  # frame attention first, then global
    rope_base: float = 100.0  # 2D RoPE frequency base (not the usual 10000)
    token_chunk: int = 1 << 16  # DINO/aggregator blocks do token-wise work on slices of this many tokens
    # (~48 frames at 518x518): bounds their transients at many frames, large enough to keep GPUs busy
    keep_layers: tuple[int, ...] = (4, 11, 17, 23)  # aggregator layers read by the DPT heads
    # --- camera head ---
    camera_trunk_depth: int = 4  # transformer blocks in the pose trunk
    camera_num_heads: int = 16  # trunk width is 2*embed_dim = 2048, heads of 128
    camera_iterations: int = 4  # refinement steps; pose_enc_list has this many entries
    # --- DPT heads (depth and point map) ---
    dpt_features: int = 256  # channels of the fusion pyramid
    dpt_out_channels: tuple[int, ...] = (256, 512, 1024, 1024)  # per-level projection widths
    dpt_hidden: int = 32  # channels of the last 3x3 conv before the output conv
    head_chunk_frames: int = 8  # frames per DPT chunk: bounds head memory, same numbers

    def __post_init__(self) -> None:
        if self.embed_dim % self.num_heads or (self.embed_dim // self.num_heads) % 4:
            raise ValueError("embed_dim / num_heads must be a multiple of 4 (2D RoPE)")
        if self.embed_dim % self.dino_num_heads:
            raise ValueError("embed_dim must be divisible by dino_num_heads")
        if (2 * self.embed_dim) % self.camera_num_heads:
            raise ValueError("2 * embed_dim must be divisible by camera_num_heads")
        if len(self.keep_layers) != 4 or list(self.keep_layers) != sorted(set(self.keep_layers)):
            raise ValueError(f"keep_layers must be 4 increasing indices, got {self.keep_layers}")
        if not 0 <= self.keep_layers[0] or self.keep_layers[-1] >= self.depth:
            raise ValueError(f"keep_layers {self.keep_layers} out of range for depth {self.depth}")
        if len(self.dpt_out_channels) != 4:
            raise ValueError("dpt_out_channels needs one width per kept layer (4)")
        if any(c % 4 for c in (*self.dpt_out_channels, self.dpt_features // 2)):
            raise ValueError("DPT widths must be multiples of 4 (sin/cos position embedding)")
        if sorted(self.aa_order) != ["frame", "global"]:
            raise ValueError(f"aa_order must order 'frame' and 'global', got {self.aa_order}")
        if self.head_chunk_frames < 1:
            raise ValueError("head_chunk_frames must be >= 1")
        if self.token_chunk < 1:
            raise ValueError("token_chunk must be >= 1")

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token: camera token, then the registers."""
        return 1 + self.num_register_tokens

    @property
    def cached_layers(self) -> tuple[int, ...]:
        """Aggregator layers to keep: the DPT levels plus the last (camera head)."""
        return tuple(sorted(set(self.keep_layers) | {self.depth - 1}))

    @classmethod
    def vggt_1b(cls, **overrides) -> "VGGTConfig":
        """VGGT-1B, as in the facebook/VGGT-1B checkpoint."""
        return replace(cls(), **overrides)

    @classmethod
    def tiny(cls, **overrides) -> "VGGTConfig":
        """A small untrained model: same modules and code paths, few layers."""
        small = cls(
            embed_dim=64,  # 4 heads of 16
            num_register_tokens=4,  # keep the token layout of the real model
            dino_depth=2,
            dino_num_heads=4,
            depth=4,  # four aggregator layers ...
            num_heads=4,
            keep_layers=(0, 1, 2, 3),  # ... all four feed the DPT heads
            camera_trunk_depth=1,
            camera_num_heads=4,
            camera_iterations=4,  # pose_enc_list still has 4 entries
            dpt_features=32,
            dpt_out_channels=(16, 32, 64, 64),
            dpt_hidden=16,
        )
        return replace(small, **overrides)


def preset(name: str, **overrides) -> VGGTConfig:
    """Config for a preset name: "vggt-1b" or "tiny"."""
    if name == "vggt-1b":
        return VGGTConfig.vggt_1b(**overrides)
    if name == "tiny":
        return VGGTConfig.tiny(**overrides)
    raise ValueError(f"unknown VGGT preset {name!r}; choose one of {', '.join(PRESETS)}")
