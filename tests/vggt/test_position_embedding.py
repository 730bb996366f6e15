"""DINO pos-embed resizing and the DPT UV sin/cos embedding."""

import math

import torch
import torch.nn.functional as F

from uv_embedding import uv_position_embedding

from serve_app.vggt.dpt_head import add_uv_embedding_
from serve_app.vggt.layers.position_embedding import resize_dino_pos_embed


def make_pos_embed(m=37, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 1 + m * m, dim, generator=g)


def test_resize_is_identity_on_the_training_grid():
    pe = make_pos_embed()
    assert resize_dino_pos_embed(pe, (37, 37)) is pe


def test_resize_shapes_and_cls_entry():
    pe = make_pos_embed()
    for h, w in [(8, 16), (37, 20), (74, 37), (1, 1)]:
        out = resize_dino_pos_embed(pe, (h, w))
        assert out.shape == (1, 1 + h * w, 8)
        assert torch.equal(out[:, 0], pe[:, 0])


def test_resize_is_antialiased_bicubic_to_an_explicit_size():
    pe = make_pos_embed()
    grid = pe[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    out = resize_dino_pos_embed(pe, (8, 16))[:, 1:].reshape(1, 8, 16, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(8, 16), mode="bicubic", antialias=True)
    assert torch.equal(out, expected)
    plain = F.interpolate(grid, size=(8, 16), mode="bicubic", antialias=False)
    assert (out - plain).abs().max() > 1e-2  # downscaling without antialias is clearly different


def test_resize_keeps_a_constant_field_constant_and_dtype():
    pe = torch.full((1, 1 + 37 * 37, 4), 0.25, dtype=torch.bfloat16)
    out = resize_dino_pos_embed(pe, (10, 23))
    assert out.dtype == torch.bfloat16
    assert torch.allclose(out.float(), torch.full_like(out.float(), 0.25), atol=1e-3)


def test_uv_embedding_values_by_hand():
    h, w, c = 3, 4, 8
    H, W = 42, 56  # aspect W/H = 4/3, diag = 5/3
    emb = uv_position_embedding(h, w, c, aspect_ratio=W / H)
    assert emb.shape == (c, h, w) and emb.dtype == torch.float32
    span_x, span_y = 0.8, 0.6
    x0 = -span_x * (w - 1) / w  # left column
    y2 = span_y * (h - 1) / h  # bottom row
    omega1 = 100.0 ** (-1 / 2)  # k = 1 of c/4 = 2 frequencies
    # channels: [sin x (2), cos x (2), sin y (2), cos y (2)]
    assert math.isclose(emb[0, 2, 0].item(), math.sin(x0), abs_tol=1e-6)
    assert math.isclose(emb[1, 2, 0].item(), math.sin(x0 * omega1), abs_tol=1e-6)
    assert math.isclose(emb[3, 2, 0].item(), math.cos(x0 * omega1), abs_tol=1e-6)
    assert math.isclose(emb[4, 2, 0].item(), math.sin(y2), abs_tol=1e-6)
    assert math.isclose(emb[6, 2, 0].item(), math.cos(y2), abs_tol=1e-6)
    # x part varies along columns only, y part along rows only
    assert torch.equal(emb[:4, 0], emb[:4, 2])
    assert torch.equal(emb[4:, :, 0], emb[4:, :, 3])
    # the grid is symmetric about the centre
    assert torch.allclose(emb[0, 0, 0], -emb[0, 0, -1], atol=1e-6)


def _uv_embedding_point_by_point(h, w, c, aspect):
    """Every grid point evaluated on its own, in float64, rounded once to float32."""
    diag = math.sqrt(aspect**2 + 1.0)
    xs = torch.linspace(-(aspect / diag) * (w - 1) / w, (aspect / diag) * (w - 1) / w, w)
    ys = torch.linspace(-(1 / diag) * (h - 1) / h, (1 / diag) * (h - 1) / h, h)
    quarter = c // 4
    omega = [1.0 / 100.0 ** (k / quarter) for k in range(quarter)]
    out = torch.empty(c, h, w, dtype=torch.float64)
    for i in range(h):
        for j in range(w):
            x, y = float(xs[j]), float(ys[i])
            values = [math.sin(x * o) for o in omega] + [math.cos(x * o) for o in omega]
            values += [math.sin(y * o) for o in omega] + [math.cos(y * o) for o in omega]
            out[:, i, j] = torch.tensor(values, dtype=torch.float64)
    return out.float()


def test_separable_uv_embedding_matches_every_grid_point():
    for h, w, c, aspect in [(3, 5, 8, 5 / 3), (7, 4, 16, 0.5), (6, 6, 12, 1.0)]:
        emb = uv_position_embedding(h, w, c, aspect_ratio=aspect)
        assert torch.allclose(emb, _uv_embedding_point_by_point(h, w, c, aspect), rtol=0, atol=1e-6)


def test_head_adds_the_embedding_without_building_it_and_gets_the_same_sum():
    x = torch.randn(2, 16, 9, 13, generator=torch.Generator().manual_seed(1))
    expected = x + uv_position_embedding(9, 13, 16, aspect_ratio=280 / 182) * 0.1
    out = add_uv_embedding_(x, (182, 280))
    assert out is x  # in place: no second map of the head's largest size
    assert torch.equal(out, expected)
