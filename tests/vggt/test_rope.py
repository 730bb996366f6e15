"""2D rotary embedding: identity at (0, 0), relative positions, rotate-half layout."""

import math

import torch

from serve_app.vggt.aggregator import patch_positions
from serve_app.vggt.layers.rope import RotaryEmbedding2D, apply_rope


def rotate(x: torch.Tensor, pos: torch.Tensor, base: float = 100.0) -> torch.Tensor:
    cos, sin = RotaryEmbedding2D(x.shape[-1], base)(pos)
    return apply_rope(x, cos, sin)


def test_position_zero_is_identity():
    x = torch.randn(2, 3, 5, 64)
    pos = torch.zeros(5, 2, dtype=torch.long)
    assert torch.equal(rotate(x, pos), x)


def test_dot_product_depends_only_on_offset():
    torch.manual_seed(0)
    q, k = torch.randn(64, dtype=torch.float64), torch.randn(64, dtype=torch.float64)
    x = torch.stack((q, k)).float()[None, None]  # [1, 1, 2, 64]

    def score(pq, pk):
        out = rotate(x, torch.tensor([pq, pk])).double()[0, 0]
        return float(out[0] @ out[1])

    ref = score((3, 5), (1, 2))
    for shift in [(1, 1), (7, 0), (0, 11), (20, 30)]:
        got = score((3 + shift[0], 5 + shift[1]), (1 + shift[0], 2 + shift[1]))
        assert math.isclose(got, ref, rel_tol=1e-4, abs_tol=1e-4)
    assert not math.isclose(score((3, 5), (1, 3)), ref, rel_tol=1e-3)  # a different offset differs


def test_rotate_half_layout_and_axes():
    # D = 8: channels 0-3 rotate with the row, 4-7 with the column;
    # inside each half channel k pairs with k + 2, frequencies 1 and 100**-0.5
    d = 8
    eye = torch.eye(d)[None, None]  # [1, 1, 8 tokens, 8 channels]: token i is unit vector e_i
    out = rotate(eye, torch.tensor([[1, 0]] * d))[0, 0]  # every token at row 1, column 0
    c, s = math.cos(1.0), math.sin(1.0)
    expected_e0 = torch.zeros(d)
    expected_e0[0], expected_e0[2] = c, s  # (x0, x2) rotated by angle row * 1
    assert torch.allclose(out[0], expected_e0, atol=1e-6)
    expected_e2 = torch.zeros(d)
    expected_e2[2], expected_e2[0] = c, -s
    assert torch.allclose(out[2], expected_e2, atol=1e-6)
    f1 = 100.0**-0.5
    assert math.isclose(out[1, 1].item(), math.cos(f1), abs_tol=1e-6)
    assert math.isclose(out[1, 3].item(), math.sin(f1), abs_tol=1e-6)
    # the column half is untouched when col == 0
    assert torch.allclose(out[4:, 4:], torch.eye(4), atol=1e-7)


def test_matches_complex_rotation_per_axis():
    torch.manual_seed(1)
    d = 64
    x = torch.randn(1, 2, 6, d)
    pos = torch.randint(0, 40, (6, 2))
    got = rotate(x, pos)
    inv_freq = 100.0 ** (-torch.arange(0, d // 2, 2, dtype=torch.float64) / (d // 2))  # [16]
    parts = []
    for axis, half in enumerate(x.double().chunk(2, dim=-1)):
        z = torch.complex(half[..., : d // 4], half[..., d // 4 :])
        theta = pos[:, axis, None].double() * inv_freq  # [6, 16]
        z = z * torch.polar(torch.ones_like(theta), theta)
        parts += [z.real, z.imag]
    expected = torch.cat(parts, dim=-1)
    assert torch.allclose(got.double(), expected, atol=1e-5)


def test_patch_positions_layout():
    pos = patch_positions(2, 3, num_special=5)
    assert pos.shape == (5 + 6, 2)
    assert torch.equal(pos[:5], torch.zeros(5, 2, dtype=pos.dtype))
    assert pos[5:].tolist() == [[1, 1], [1, 2], [1, 3], [2, 1], [2, 2], [2, 3]]  # (row+1, col+1), row-major
