"""Building blocks: attention, MLP, LayerScale, DPT residual unit, camera activation."""

import torch
import torch.nn.functional as F

from serve_app.vggt.camera_head import activate_pose
from serve_app.vggt.dpt_head import ResidualConvUnit
from serve_app.vggt.layers import Attention, Block, Mlp
from serve_app.vggt.layers.rope import RotaryEmbedding2D, apply_rope


def test_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, qk_norm=True)
    x = torch.randn(2, 7, 32)
    pos = torch.randint(0, 5, (7, 2))
    rope = RotaryEmbedding2D(8)(pos)
    got = attn(x, rope=rope)
    # by hand: qkv split, per-head LayerNorm on q and k, RoPE, softmax(q k^T / sqrt(8)) v
    q, k, v = attn.qkv(x).reshape(2, 7, 3, 4, 8).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 7, 32))
    assert torch.allclose(got, expected, atol=1e-5)


def test_qk_norm_is_per_head_with_default_eps():
    attn = Attention(64, num_heads=4, qk_norm=True)
    assert attn.q_norm.normalized_shape == (16,) and attn.q_norm.eps == 1e-5
    assert isinstance(Attention(64, 4).q_norm, torch.nn.Identity)


def test_block_norm_eps_and_residuals():
    block = Block(16, 2, norm_eps=1e-6, init_values=0.0)
    assert block.norm1.eps == 1e-6 and block.norm2.eps == 1e-6
    x = torch.randn(1, 3, 16)
    assert torch.equal(block(x), x)  # zero LayerScale: the block is the identity


def test_mlp_uses_exact_gelu():
    mlp = Mlp(4, 8)
    x = torch.randn(5, 4) * 3
    expected = mlp.fc2(F.gelu(mlp.fc1(x), approximate="none"))
    assert torch.equal(mlp(x), expected)


def test_residual_unit_skip_is_relu_of_input():
    unit = ResidualConvUnit(3)
    for conv in (unit.conv1, unit.conv2):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.randn(1, 3, 4, 4)
    assert torch.equal(unit(x), F.relu(x))  # the trained checkpoint expects relu(x), not x


def test_pose_activation_relu_on_fov_only():
    raw = torch.tensor([[-1.0, -2, -3, -0.1, -0.2, -0.3, -0.4, -0.5, 0.6]])
    out = activate_pose(raw)
    assert torch.equal(out[:, :7], raw[:, :7])
    assert out[0, 7] == 0 and out[0, 8] == raw[0, 8]


def _sliced_and_whole(B: int, N: int, chunk: int, rope: bool = True):
    torch.manual_seed(0)
    whole = Block(32, 4, qk_norm=True, init_values=0.5)
    sliced = Block(32, 4, qk_norm=True, init_values=0.5, token_chunk=chunk)
    sliced.load_state_dict(whole.state_dict())
    x = torch.randn(B, N, 32)
    pos = torch.randint(0, 9, (N, 2))
    cos_sin = RotaryEmbedding2D(8)(pos) if rope else None
    return whole, sliced, x, cos_sin


def test_sliced_block_gives_the_same_result():
    # frame-block shape (many samples, few tokens) and global-block shape (one sample), slices not dividing N
    for B, N, chunk in [(6, 50, 64), (1, 300, 64), (3, 7, 1)]:
        whole, sliced, x, rope = _sliced_and_whole(B, N, chunk)
        with torch.no_grad():
            assert torch.allclose(sliced(x, rope=rope), whole(x, rope=rope), rtol=1e-5, atol=1e-6)
    whole, sliced, x, _ = _sliced_and_whole(2, 40, 16, rope=False)
    with torch.no_grad():
        assert torch.allclose(sliced(x), whole(x), rtol=1e-5, atol=1e-6)


def test_sliced_block_under_autocast_keeps_q_k_v_in_the_autocast_dtype(monkeypatch):
    whole, sliced, x, rope = _sliced_and_whole(1, 300, 64)
    seen = []
    original = F.scaled_dot_product_attention

    def spy(q, k, v, *args, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype))
        return original(q, k, v, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = sliced(x, rope=rope)
        expected = whole(x, rope=rope)
    assert seen[0] == (torch.bfloat16,) * 3  # sliced: stored as bf16, no whole float32 q/k
    assert got.dtype == expected.dtype == torch.float32  # the residual stream stays float32
    assert torch.allclose(got, expected, rtol=1e-2, atol=1e-2)


def test_sliced_block_holds_less_memory():
    from devkit.live_memory import LiveTensorBytes

    whole, sliced, x, rope = _sliced_and_whole(1, 4096, 256)
    peaks = []
    for block in (whole, sliced):
        with torch.no_grad(), LiveTensorBytes() as meter:
            block(x, rope=rope)
        peaks.append(meter.peak)
    assert peaks[1] < 0.6 * peaks[0], peaks
