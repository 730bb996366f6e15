"""Sharpness scores and sharpest-frame sampling."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from serve_app.frames import sample_video
from serve_app.frames.sharpness import SCORE_SIDE, frame_sharpness, laplacian_variance


def test_blur_lowers_the_score():
    rng = np.random.default_rng(1)
    sharp = rng.integers(0, 256, (300, 400), dtype=np.uint8)
    scores = [laplacian_variance(cv2.GaussianBlur(sharp, (0, 0), s)) if s else laplacian_variance(sharp)
              for s in (0, 1, 2, 4)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] > 10 * scores[-1]


def checkerboard(height: int, width: int, value: int) -> np.ndarray:
    return ((np.indices((height, width)).sum(axis=0) % 2) * value).astype(np.uint8)


def test_checkerboard_scores_sixteen_times_its_contrast_squared():
    """Every pixel differs from its 4 neighbours by the contrast v: the Laplacian is +-4v
    (mirrored borders keep the pattern), mean 0, so the variance is 16 v^2."""
    assert laplacian_variance(checkerboard(4, 4, 10)) == 1600.0
    assert laplacian_variance(checkerboard(6, 8, 3)) == 144.0
    assert laplacian_variance(np.full((5, 7), 200, np.uint8)) == 0.0


def test_a_single_dot_scores_its_hand_computed_variance():
    """A 3x3 image, 9 in the middle: Laplacian [[0,18,0],[18,-36,18],[0,18,0]] (the border
    mirrors the middle into each edge pixel), mean 4, mean square 288: variance 272."""
    dot = np.zeros((3, 3), np.uint8)
    dot[1, 1] = 9
    assert laplacian_variance(dot) == pytest.approx(272.0, rel=1e-6)


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_an_enlarged_image_scores_as_the_original(factor):
    """Images over SCORE_SIDE are shrunk to it first: the same scene at 2, 4 or 8 times the pixels
    (each pixel a factor x factor block) scores exactly as at SCORE_SIDE. Landscape, so a
    width/height mix-up changes the score."""
    rng = np.random.default_rng(3)
    scene = rng.integers(0, 256, (SCORE_SIDE // 2, SCORE_SIDE), dtype=np.uint8)
    enlarged = np.kron(scene, np.ones((factor, factor), np.uint8))
    assert enlarged.shape == (SCORE_SIDE // 2 * factor, SCORE_SIDE * factor)
    assert laplacian_variance(enlarged) == pytest.approx(laplacian_variance(scene), rel=1e-6)
    assert laplacian_variance(enlarged.T) == pytest.approx(laplacian_variance(scene.T), rel=1e-6)
    # scored at full size instead, the blocks' flat insides lower the score
    assert laplacian_variance(enlarged, side=max(enlarged.shape)) < laplacian_variance(scene) / 2


def test_images_up_to_the_scoring_side_are_scored_as_they_are():
    board = checkerboard(SCORE_SIDE, SCORE_SIDE - 2, 5)
    assert laplacian_variance(board) == 400.0  # not shrunk: shrinking would average it flat
    assert laplacian_variance(checkerboard(SCORE_SIDE * 2, SCORE_SIDE * 2, 5)) == 0.0


def test_blur_orders_full_hd_textures():
    """Through the shrinking path: a coarse texture (detail survives 4x shrinking) at full HD."""
    rng = np.random.default_rng(4)
    coarse = rng.integers(0, 256, (1080 // 8, 1920 // 8), dtype=np.uint8)
    texture = cv2.resize(coarse, (1920, 1080), interpolation=cv2.INTER_NEAREST)
    scores = [laplacian_variance(texture)]
    scores += [laplacian_variance(cv2.GaussianBlur(texture, (0, 0), sigma)) for sigma in (2, 4, 8)]
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 4
    assert scores[0] > 4 * scores[-1]


def test_a_colour_image_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        laplacian_variance(np.zeros((4, 4, 3), np.uint8))


def test_a_grey_frame_is_scored_from_its_plane_without_its_row_padding():
    board = checkerboard(70, 100, 6)  # rows padded in the frame's buffer
    frame = av.VideoFrame.from_ndarray(board, format="gray")
    assert frame.planes[0].line_size > 100
    assert frame_sharpness(frame) == 576.0


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
