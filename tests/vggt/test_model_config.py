"""VGGTConfig presets and validation."""

import dataclasses

import pytest

from serve_app.vggt import PRESETS, VGGT, VGGTConfig, preset


def test_presets():
    assert PRESETS == ("vggt-1b", "tiny")
    assert preset("vggt-1b") == VGGTConfig() == VGGTConfig.vggt_1b()
    assert preset("tiny") == VGGTConfig.tiny()
    assert preset("tiny", head_chunk_frames=2).head_chunk_frames == 2
    with pytest.raises(ValueError, match="unknown VGGT preset"):
        preset("vggt-7b")


def test_full_size_defaults():
    cfg = VGGTConfig()
    assert (cfg.img_size, cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads) == (518, 14, 1024, 24, 16)
    assert cfg.keep_layers == (4, 11, 17, 23) and cfg.cached_layers == (4, 11, 17, 23)
    assert cfg.aa_order == ("frame", "global") and cfg.head_chunk_frames == 8
    assert cfg.patch_start_idx == 5


def test_tiny_uses_valid_layers():
    cfg = VGGTConfig.tiny()
    assert all(0 <= i < cfg.depth for i in cfg.keep_layers)
    assert cfg.camera_iterations == 4


def test_config_is_frozen_and_validated():
    cfg = VGGTConfig.tiny()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.depth = 3
    for bad in (
        dict(keep_layers=(0, 1, 2, 9)),
        dict(keep_layers=(2, 1, 0, 3)),
        dict(keep_layers=(0, 1, 3)),
        dict(num_heads=3),
        dict(aa_order=("frame", "frame")),
        dict(head_chunk_frames=0),
        dict(token_chunk=0),
    ):
        with pytest.raises(ValueError):
            VGGTConfig.tiny(**bad)


def test_model_accepts_a_preset_name():
    assert VGGT("tiny").config == VGGTConfig.tiny()
