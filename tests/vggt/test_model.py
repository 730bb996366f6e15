"""VGGT model: output contract, input validation, key layout, memory-related behaviour."""

import dataclasses
import json
import pathlib

import pytest
import torch

from serve_app.vggt import VGGT, VGGTConfig

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return VGGT(VGGTConfig.tiny()).eval()


def check_outputs(out, B, S, H, W):
    assert out["pose_enc"].shape == (B, S, 9)
    assert len(out["pose_enc_list"]) == 4 and all(p.shape == (B, S, 9) for p in out["pose_enc_list"])
    assert torch.equal(out["pose_enc"], out["pose_enc_list"][-1])
    assert out["depth"].shape == (B, S, H, W, 1)
    assert out["depth_conf"].shape == (B, S, H, W)
    assert out["world_points"].shape == (B, S, H, W, 3)
    assert out["world_points_conf"].shape == (B, S, H, W)
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert out[key].dtype == torch.float32
        assert torch.isfinite(out[key]).all()
    assert (out["depth"] > 0).all() and (out["depth_conf"] > 1).all() and (out["world_points_conf"] > 1).all()
    assert (out["pose_enc"][..., 7:] >= 0).all()  # FoVs through ReLU


def test_tiny_forward_4d(tiny):
    x = torch.rand(2, 3, 56, 56)
    with torch.no_grad():
        out = tiny(x)
    check_outputs(out, 1, 2, 56, 56)
    assert torch.equal(out["images"], x[None])


def test_tiny_single_frame(tiny):
    with torch.no_grad():
        out = tiny(torch.rand(1, 3, 28, 28))
    check_outputs(out, 1, 1, 28, 28)


def test_tiny_forward_5d_batch_is_independent(tiny):
    x = torch.rand(2, 3, 3, 42, 28)
    with torch.no_grad():
        out = tiny(x)
        single = tiny(x[1])
    check_outputs(out, 2, 3, 42, 28)
    for key in ("pose_enc", "depth", "world_points"):
        assert torch.allclose(out[key][1], single[key][0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 50, 56), (2, 3, 56, 57), (2, 4, 56, 56), (3, 56, 56), (1, 1, 2, 3, 56, 56), (2, 3, 0, 56)],
)
def test_bad_input_shapes_raise_value_error(tiny, shape):
    with pytest.raises(ValueError):
        tiny(torch.rand(*shape))


def test_integer_images_are_rejected(tiny):
    with pytest.raises(ValueError, match="floating point"):
        tiny(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))


def test_head_chunking_does_not_change_results(tiny):
    x = torch.rand(3, 3, 28, 42)
    with torch.no_grad():
        whole = tiny(x)
        config = tiny.config
        tiny.config = dataclasses.replace(config, head_chunk_frames=2)
        try:
            chunked = tiny(x)
        finally:
            tiny.config = config
    for key in ("depth", "depth_conf", "world_points", "world_points_conf"):
        assert torch.allclose(whole[key], chunked[key], atol=1e-6, rtol=1e-5)


def test_token_slicing_does_not_change_results(tiny):
    sliced = VGGT(VGGTConfig.tiny(token_chunk=16)).eval()  # every DINO and aggregator block slices
    sliced.load_state_dict(tiny.state_dict())
    x = torch.rand(3, 3, 28, 42)
    with torch.no_grad():
        a, b = tiny(x), sliced(x)
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-5), key


def test_aggregator_keeps_only_the_layers_the_heads_read():
    torch.manual_seed(0)
    model = VGGT(VGGTConfig.tiny(depth=6, keep_layers=(1, 2, 3, 4))).eval()
    with torch.no_grad():
        layers = model.aggregator(torch.rand(1, 2, 3, 28, 28))
    assert sorted(layers) == [1, 2, 3, 4, 5]  # the DPT levels plus the last layer (camera head)
    P = model.config.patch_start_idx + 4
    assert all(t.shape == (1, 2, P, 2 * model.config.embed_dim) for t in layers.values())


def test_heads_stay_float32_under_autocast(tiny):
    x = torch.rand(2, 3, 28, 42)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny(x)
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
        assert out[key].dtype == torch.float32


def test_full_model_keys_match_the_public_checkpoint():
    manifest = json.loads((DATA / "vggt_manifest.json").read_text())
    expected = {k["name"]: tuple(k["shape"]) for k in manifest["keys"] if not k["name"].startswith("track_head.")}
    with torch.device("meta"):
        model = VGGT()
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == expected
    assert list(model.state_dict()) == [k for k in expected]  # same order as the checkpoint
    assert not list(model.buffers())  # nothing outside the checkpoint


def test_bfloat16_weights_still_return_float32(tiny):
    model = VGGT(VGGTConfig.tiny()).eval()
    model.load_state_dict(tiny.state_dict())
    model.aggregator.to(torch.bfloat16)  # aggregator in bf16, heads in float32
    x = torch.rand(2, 3, 28, 42)
    with torch.no_grad():
        ref = tiny(x)
        half = model(x)
        model.to(torch.bfloat16)  # everything in bf16
        full_half = model(x)
    for out in (half, full_half):
        check_outputs(out, 1, 2, 28, 42)
    assert torch.allclose(half["depth"], ref["depth"], rtol=0.1)
