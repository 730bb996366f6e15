"""A selection's colours, read for the indices asked, are exactly `pixel_colors` of those indices in every
image layout; the prediction arrays each export source reads; and the selection's edges: a missing
confidence, one frame of several, integer confidences and thresholds of one value or none."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.export.options import ExportOptions
from serve_app.export.points import (
    Selection,
    confidence_threshold,
    keep_mask,
    pixel_colors,
    points_and_confidence,
    prediction_keys,
    select,
)

S, H, W = 2, 5, 7  # H != W: a row swapped for a column shows


def images_in(layout: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    values = rng.random((S, H, 3 if layout == "channels_last_3_wide" else W, 3)).astype(np.float32)
    values[0, 0, 0] = (0.0, 1.0, 0.5)
    if layout.startswith("channels_last"):
        return values
    if layout == "strided":  # [S, 3, H, W] as a view, not contiguous
        return values.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("layout", ["contiguous", "strided", "channels_last", "channels_last_3_wide"])
def test_colors_of_any_indices_are_pixel_colors_of_them(layout):
    images = images_in(layout)
    count = images.size // 3
    plane = count // S
    selection = Selection(
        points=np.zeros((count, 3), np.float32), confidence=np.ones(count, np.float32), images=images,
        kept=np.arange(count),
    )
    indices = np.concatenate([[0, count - 1, plane, plane - 1], np.random.default_rng(4).permutation(count)[:30]])
    colors = selection.colors(indices)
    assert colors.dtype == np.uint8 and colors.shape == (len(indices), 3)
    np.testing.assert_array_equal(colors, pixel_colors(images)[indices])
    np.testing.assert_array_equal(colors[0], [0, 255, 127])


def test_each_source_reads_its_own_arrays():
    assert prediction_keys("pointmap") == ("world_points", "world_points_conf", "images", "extrinsic")
    assert prediction_keys("depth") == ("world_points_from_depth", "depth_conf", "images", "extrinsic")


def frame_points() -> np.ndarray:
    return np.random.default_rng(6).normal(size=(S, H, W, 3)).astype(np.float32)


@pytest.mark.parametrize(("source", "key"), [("pointmap", "world_points"), ("depth", "world_points_from_depth")])
def test_a_missing_confidence_counts_as_one_everywhere(source, key):
    points = frame_points()
    got_points, conf = points_and_confidence({key: points}, source)
    np.testing.assert_array_equal(got_points, points)
    assert conf.shape == (S, H, W)
    np.testing.assert_array_equal(conf, np.ones((S, H, W)))
    selection = select({key: points, "images": images_in("contiguous")}, ExportOptions(source=source, conf_percentile=50))
    np.testing.assert_array_equal(selection.kept, np.arange(S * H * W))  # every confidence is the median


def test_one_frame_of_several_holds_only_that_frames_candidates():
    points, images = frame_points(), images_in("contiguous")
    conf = np.arange(1, S * H * W + 1, dtype=np.float32).reshape(S, H, W)
    selection = select({"world_points": points, "world_points_conf": conf, "images": images},
                       ExportOptions(frame=0, conf_percentile=0))
    np.testing.assert_array_equal(selection.points, points[0].reshape(-1, 3))
    np.testing.assert_array_equal(selection.confidence, conf[0].reshape(-1))
    np.testing.assert_array_equal(selection.images, images[:1])
    np.testing.assert_array_equal(selection.kept, np.arange(H * W))


def test_an_integer_confidence_at_the_threshold_is_kept_and_zero_is_not():
    conf = np.array([5, 1, 3, 0, 4, 2, 3], np.int64)  # the 50th percentile is 3
    colors = np.full((7, 3), 100, np.uint8)
    keep = keep_mask(conf, colors, percentile=50, mask_black_bg=False, mask_white_bg=False)
    assert np.flatnonzero(keep).tolist() == [0, 2, 4, 6]
    keep = keep_mask(conf, colors, percentile=0, mask_black_bg=False, mask_white_bg=False)
    assert np.flatnonzero(keep).tolist() == [0, 1, 2, 4, 5, 6]


def test_the_threshold_of_one_confidence_is_that_value_and_of_none_is_zero():
    for percentile in (1.0, 50.0, 100.0):
        assert confidence_threshold(np.array([2.5], np.float32), percentile) == 2.5
        assert confidence_threshold(np.empty(0, np.float32), percentile) == 0.0
