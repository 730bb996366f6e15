"""preprocess_images against a file-based reference of the upstream loader's steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from serve_app.vggt.preprocess import preprocess_images, resized_size

TARGET = 518


def _frame(h: int, w: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: exercises both the filter and the rounding."""
    rng = np.random.default_rng(seed + h * 7 + w)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 / max(w - 1, 1)), (yy * 255 / max(h - 1, 1)), ((xx + yy) % 64) * 4], -1)
    img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    if channels == 4:
        alpha = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)
        alpha[: h // 3] = 0  # fully transparent band -> white
        alpha[-(h // 3) :] = 255  # opaque band -> unchanged
        img = np.concatenate([img, alpha], -1)
    return img


def _reference(paths: list[Path], mode: str) -> np.ndarray:
    """The upstream steps, re-done from PNG files with PIL and numpy: [N,3,H,W] float32."""
    out = []
    for path in paths:
        img = Image.open(path)
        if img.mode == "RGBA":
            img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
        img = img.convert("RGB")
        w, h = img.size
        if mode == "pad" and h > w:
            nh, nw = TARGET, round(w * (TARGET / h) / 14) * 14
        else:
            nw, nh = TARGET, round(h * (TARGET / w) / 14) * 14
        arr = np.asarray(img.resize((nw, nh), Image.Resampling.BICUBIC)).astype(np.float32)
        chw = (arr / np.float32(255.0)).transpose(2, 0, 1)
        if mode == "crop" and nh > TARGET:
            top = (nh - TARGET) // 2
            chw = chw[:, top : top + TARGET]
        if mode == "pad":
            chw = _np_pad(chw, TARGET, TARGET)
        out.append(chw)
    hmax = max(c.shape[1] for c in out)
    wmax = max(c.shape[2] for c in out)
    return np.stack([_np_pad(c, hmax, wmax) for c in out])


def _np_pad(chw: np.ndarray, h: int, w: int) -> np.ndarray:
    dh, dw = h - chw.shape[1], w - chw.shape[2]
    return np.pad(chw, ((0, 0), (dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)), constant_values=1.0)


def _write(tmp_path: Path, frames: list[np.ndarray]) -> list[Path]:
    paths = []
    for i, f in enumerate(frames):
        p = tmp_path / f"frame{i}.png"
        Image.fromarray(f).save(p)
        paths.append(p)
    return paths


SIZES = {
    "landscape": (480, 640, 3),
    "portrait_taller_than_518": (1000, 600, 3),
    "square_upscaled": (300, 300, 3),
    "odd_small": (97, 131, 3),
    "odd_large": (777, 1023, 3),
    "already_518": (518, 518, 3),
    "rgba": (241, 403, 4),
    "rgba_portrait": (403, 241, 4),
}


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("name", sorted(SIZES))
def test_single_frame_matches_file_reference(tmp_path, name, mode):
    h, w, c = SIZES[name]
    frame = _frame(h, w, c)
    ours = preprocess_images([frame], mode=mode)
    ref = _reference(_write(tmp_path, [frame]), mode)
    assert ours.dtype == torch.float32
    assert ours.shape == ref.shape
    assert torch.equal(ours, torch.from_numpy(ref)), f"max diff {np.abs(ours.numpy() - ref).max()}"


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_mixed_sizes_are_padded_like_reference(tmp_path, mode):
    frames = [_frame(480, 640), _frame(1000, 600), _frame(97, 131), _frame(241, 403, 4)]
    ours = preprocess_images(frames, mode=mode)
    ref = _reference(_write(tmp_path, frames), mode)
    assert ours.shape == ref.shape
    assert torch.equal(ours, torch.from_numpy(ref))


def test_output_shapes():
    crop = preprocess_images([_frame(480, 640), _frame(1000, 600)], mode="crop")
    assert crop.shape == (2, 3, 518, 518)  # 392-row landscape padded to the cropped portrait
    assert preprocess_images([_frame(1080, 1920)], mode="crop").shape == (1, 3, 294, 518)
    assert preprocess_images([_frame(1080, 1920)], mode="pad").shape == (1, 3, 518, 518)
    assert preprocess_images([_frame(1080, 1920)], mode="crop").min() >= 0


def test_rgba_composites_on_white():
    frame = _frame(60, 80, 4)
    frame[:, :, 3] = 0
    out = preprocess_images([frame])
    assert torch.equal(out, torch.ones_like(out))


def test_python_round_half_to_even():
    # 73 * 518 / 74 / 14 == 36.5 exactly: half-to-even gives 36 patches, not 37.
    assert resized_size(74, 73, "crop") == (518, 504)
    assert resized_size(74, 75, "crop") == (518, 532)  # 37.5 -> 38
    assert resized_size(73, 74, "pad") == (504, 518)


def test_grey_frames_and_bad_input():
    grey = np.full((50, 70), 128, np.uint8)
    assert torch.allclose(preprocess_images([grey]), torch.tensor(128 / 255))
    with pytest.raises(ValueError):
        preprocess_images([])
    with pytest.raises(ValueError):
        preprocess_images([_frame(10, 10)], mode="stretch")
    with pytest.raises(ValueError):
        preprocess_images([np.zeros((10, 10, 3), np.float32)])
