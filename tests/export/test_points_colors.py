"""A selection's colours, read for the indices asked, are exactly `pixel_colors` of those indices in every
image layout; and the prediction arrays each export source reads."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.export.points import Selection, pixel_colors, prediction_keys

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
