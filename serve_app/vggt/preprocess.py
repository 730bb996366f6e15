"""Frames to the model's input tensor, pixel-for-pixel like the reference loader.

The reference pipeline resizes with Pillow's BICUBIC filter: a cubic kernel
with a = -0.5 whose support widens with the downscale factor, fixed-point
weights, and a uint8 intermediate between the horizontal and vertical
passes. No other resize we have gives the same pixels: OpenCV INTER_CUBIC
(a = -0.75, no antialiasing) is off by up to 11 grey levels, torch's
antialiased bicubic by 1-2 levels on a fraction of pixels (uint8 and float32
paths alike). The resize is therefore done with Pillow on the in-memory
uint8 array (`Image.fromarray`, no file involved); the rest is torch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from serve_app import model_input
from serve_app.model_input import Mode

from .config import VGGTConfig

# Defaults are VGGT-1B's (VGGTConfig): output sides are multiples of the patch size, and
# the long (pad) or horizontal (crop) side is the training resolution.
PATCH_SIZE = VGGTConfig.patch_size
TARGET_SIZE = VGGTConfig.img_size


log = logging.getLogger(__name__)


def preprocess_images(
    images: Sequence[np.ndarray],
    mode: Mode = "crop",
    target_size: int = TARGET_SIZE,
    patch_size: int = PATCH_SIZE,
) -> torch.Tensor:
    """Resize, crop or pad RGB(A) uint8 frames into one [N,3,H,W] float32 batch in [0, 1].

    crop: width -> target_size, height scaled to a multiple of patch_size, centre rows
    kept when taller than target_size. pad: longer side -> target_size, then
    padded with white (1.0) to a square. Frames that still differ in size are
    padded with white, centred, to the largest height and width.
    """
    if mode not in ("crop", "pad"):
        raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")
    if len(images) == 0:
        raise ValueError("at least one image is required")

    tensors = [_preprocess_one(img, mode, target_size, patch_size) for img in images]  # each [3,h,w]
    shapes = {tuple(t.shape[1:]) for t in tensors}
    if len(shapes) > 1:
        log.warning("frames differ in size after resizing %s; padding with white", sorted(shapes))
        max_h = max(h for h, _ in shapes)
        max_w = max(w for _, w in shapes)
        tensors = [_pad_white(t, max_h, max_w) for t in tensors]
    return torch.stack(tensors)  # [N,3,H,W]


def resized_size(
    width: int, height: int, mode: Mode, target_size: int = TARGET_SIZE, patch_size: int = PATCH_SIZE
) -> tuple[int, int]:
    """(new_width, new_height) before any crop or pad (`serve_app.model_input`), VGGT-1B's sizes by default."""
    return model_input.resized_size(width, height, mode, target_size, patch_size)


def to_rgb_image(img: np.ndarray) -> Image.Image:
    """uint8 [H,W,3] RGB, [H,W,4] RGBA (composited on white) or [H,W] grey -> PIL RGB image."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"frames must be [H,W,3] RGB or [H,W,4] RGBA, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"empty frame of shape {arr.shape}")
    pil = Image.fromarray(np.ascontiguousarray(arr))
    if pil.mode == "RGBA":
        white = Image.new("RGBA", pil.size, (255, 255, 255, 255))
        pil = Image.alpha_composite(white, pil)
    return pil.convert("RGB")


def _preprocess_one(img: np.ndarray, mode: Mode, target_size: int, patch_size: int) -> torch.Tensor:
    pil = to_rgb_image(img)
    new_w, new_h = resized_size(pil.width, pil.height, mode, target_size, patch_size)
    pil = pil.resize((new_w, new_h), Image.Resampling.BICUBIC)
    hwc = torch.from_numpy(np.asarray(pil).copy())  # [h,w,3] uint8
    chw = hwc.permute(2, 0, 1).to(torch.float32).div_(255.0)  # [3,h,w] in [0,1]
    if mode == "crop" and new_h > target_size:
        top = (new_h - target_size) // 2
        chw = chw[:, top : top + target_size, :]
    if mode == "pad":
        chw = _pad_white(chw, target_size, target_size)
    return chw.contiguous()


def _pad_white(chw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad [3,h,w] with 1.0 to [3,height,width]; top/left get the smaller half."""
    dh = height - chw.shape[1]
    dw = width - chw.shape[2]
    if dh <= 0 and dw <= 0:
        return chw
    dh, dw = max(dh, 0), max(dw, 0)
    return F.pad(chw, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2), mode="constant", value=1.0)
