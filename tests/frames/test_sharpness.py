"""Sharpness scores and sharpest-frame sampling."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from serve_app.frames import sample_video
from serve_app.frames.sharpness import frame_sharpness, laplacian_variance


def test_blur_lowers_the_score():
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    scores = [laplacian_variance(cv2.GaussianBlur(sharp, (0, 0), s)) if s else laplacian_variance(sharp)
              for s in (0, 1, 2, 4)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 10 * scores[-1]


def test_large_images_are_scored_downscaled():
    flat = np.full((2000, 3000), 7, np.uint8)
    assert laplacian_variance(flat) == 0.0


def test_frame_score_reads_the_luma_plane():
    rng = np.random.default_rng(2)
    sharp = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    soft = cv2.GaussianBlur(sharp, (0, 0), 1.5)
    for rgb in (sharp, soft):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        via_luma = frame_sharpness(frame.reformat(format="yuv420p"))
        via_swscale = frame_sharpness(frame)  # rgb24 takes the fallback path
        # video luma is limited range (16-235): scores shrink by (219/255)^2
        assert via_luma == pytest.approx(rgb_sharpness(rgb) * (219 / 255) ** 2, rel=0.1)
        assert via_swscale == pytest.approx(rgb_sharpness(rgb), rel=0.1)


def test_sharpest_picks_the_sharp_frame_of_each_window(media, tmp_path):
    # 3 s at 10 fps, one window per second; one sharp frame per window
    sharp = {3, 17, 24}
    images = [media.textured_frame(i, blur=0 if i in sharp else 2.5, seed=i) for i in range(30)]
    path = media.write_video(tmp_path / "shaky.mp4", images, fps=10, gop=10)
    picked = [media.read_index(f) for f in sample_video(path, fps=1.0, sharpest=True)]
    assert picked == sorted(sharp)
    plain = [media.read_index(f) for f in sample_video(path, fps=1.0)]
    assert plain == [0, 10, 20]


def rgb_sharpness(rgb: np.ndarray) -> float:
    """Sharpness of an RGB uint8 image through OpenCV's own grey conversion: the reference."""
    return laplacian_variance(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
