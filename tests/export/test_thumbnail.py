"""The preview picture of a share link: the first model-input frame as a 400 px wide JPEG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serve_app.export.thumbnail import THUMBNAIL_WIDTH, first_frame_jpeg


def frames(channels_first: bool) -> np.ndarray:
    """Two 350x518 frames: the first red on the left half and blue on the right, the second green."""
    images = np.zeros((2, 350, 518, 3), np.float32)
    images[0, :, :259, 0] = 1.0
    images[0, :, 259:, 2] = 1.0
    images[1, ..., 1] = 1.0
    return images.transpose(0, 3, 1, 2).copy() if channels_first else images


@pytest.mark.parametrize("channels_first", [True, False])
def test_first_frame_scaled_to_the_width(channels_first):
    jpeg = first_frame_jpeg(frames(channels_first))
    picture = Image.open(io.BytesIO(jpeg))
    assert picture.format == "JPEG" and picture.size == (THUMBNAIL_WIDTH, round(350 * THUMBNAIL_WIDTH / 518))
    rgb = np.asarray(picture.convert("RGB")).astype(int)
    left, right = rgb[:, : THUMBNAIL_WIDTH // 4].mean(axis=(0, 1)), rgb[:, -THUMBNAIL_WIDTH // 4 :].mean(axis=(0, 1))
    assert left[0] > 230 and left[1] < 25 and left[2] < 25  # red: frame 0, not the green frame 1
    assert right[2] > 230 and right[0] < 25 and right[1] < 25


@pytest.mark.parametrize("images", [None, np.zeros((0, 3, 8, 8), np.float32), np.zeros((8, 8, 3), np.float32)])
def test_no_frame_no_picture(images):
    assert first_frame_jpeg(images) is None


@pytest.mark.parametrize("value, low, high", [(7.0, 245, 255), (-3.0, 0, 10)])
def test_out_of_range_values_are_clipped(value, low, high):
    picture = Image.open(io.BytesIO(first_frame_jpeg(np.full((1, 3, 16, 16), value, np.float32), width=16)))
    rgb = np.asarray(picture.convert("RGB"))
    assert low <= rgb.min() and rgb.max() <= high
