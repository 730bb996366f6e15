"""Capping at its edges: a selection caps exactly as `cap_points` does on its kept points, the defaults, and
voxel merging of well separated clusters into their mean points and colours."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.export.points import Selection, cap_points, voxel_downsample


def selection(count: int = 200) -> Selection:
    rng = np.random.default_rng(7)
    images = rng.random((2, 3, 10, 10)).astype(np.float32)
    total = images.size // 3
    return Selection(
        points=rng.normal(size=(total, 3)).astype(np.float32),
        confidence=(rng.random(total) * 5 + 1).astype(np.float32),
        images=images,
        kept=np.sort(rng.choice(total, count, replace=False)),
    )


@pytest.mark.parametrize("method", ["uniform", "voxel"])
@pytest.mark.parametrize("max_points", [50, 199, 200, 201])
@pytest.mark.parametrize("seed", [0, 5])
def test_a_selection_caps_its_kept_points_as_cap_points_does(method, max_points, seed):
    s = selection()
    vertices, colors = s.capped(max_points, method, seed=seed)
    expected_vertices, expected_colors = cap_points(
        s.vertices(s.kept), s.colors(s.kept), max_points, method=method, seed=seed
    )
    np.testing.assert_array_equal(vertices, expected_vertices)
    np.testing.assert_array_equal(colors, expected_colors)
    assert len(vertices) <= max_points


def test_confidence_capping_is_seeded_and_prefers_confident_points():
    s = selection()
    first = s.capped(50, "confidence", seed=0)[0]
    np.testing.assert_array_equal(first, s.capped(50, "confidence", seed=0)[0])
    assert not np.array_equal(first, s.capped(50, "confidence", seed=5)[0])
    assert not np.array_equal(first, s.capped(50, "uniform", seed=0)[0])


def test_cap_points_defaults_to_uniform_with_seed_0_and_passes_small_clouds_through():
    rng = np.random.default_rng(1)
    vertices, colors = rng.normal(size=(100, 3)), rng.integers(0, 255, (100, 3), dtype=np.uint8)
    default = cap_points(vertices, colors, 10)
    np.testing.assert_array_equal(default[0], cap_points(vertices, colors, 10, method="uniform", seed=0)[0])
    assert not np.array_equal(default[0], cap_points(vertices, colors, 10, seed=1)[0])
    same = cap_points(vertices, colors, 100)
    assert same[0] is vertices and same[1] is colors


def test_voxel_merging_gives_each_cluster_its_mean_point_and_colour():
    rng = np.random.default_rng(2)
    centres = np.array([[-5.0, 1.0, 2.0], [10.0, 20.0, 30.0]])
    vertices = np.concatenate([c + rng.uniform(-0.01, 0.01, (50, 3)) for c in centres]).astype(np.float32)
    colors = np.concatenate([np.full((50, 3), 10, np.uint8), np.full((50, 3), 200, np.uint8)])
    colors[0] = (11, 11, 11)  # the first cluster's mean colour: 10.02, rounded to 10
    merged, merged_colors = voxel_downsample(vertices, colors, 2)
    assert merged.dtype == np.float32 and merged_colors.dtype == np.uint8
    order = np.argsort(merged[:, 0])
    np.testing.assert_allclose(merged[order], [vertices[:50].mean(0), vertices[50:].mean(0)], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(merged_colors[order], [[10, 10, 10], [200, 200, 200]])


def test_cap_indices_are_distinct_and_only_confidence_weights_them():
    from serve_app.export.points import cap_indices

    confidence = np.random.default_rng(3).random(100) * 5 + 1
    uniform = cap_indices(100, 90, seed=4)
    assert len(np.unique(uniform)) == 90
    np.testing.assert_array_equal(cap_indices(100, 10, method="uniform", confidence=confidence, seed=0),
                                  cap_indices(100, 10, seed=0))
    weighted = [cap_indices(100, 10, method="confidence", confidence=confidence, seed=s) for s in (0, 5)]
    assert not np.array_equal(weighted[0], weighted[1])


def test_a_bad_frame_number_is_named():
    from serve_app.export.points import frame_index

    with pytest.raises(ValueError, match="^frame must be an integer, got True$"):
        frame_index(True, 3)
    with pytest.raises(ValueError, match="^frame 3 is out of range: there are 3 frames$"):
        frame_index(3, 3)


def test_a_selection_caps_with_seed_0_unless_told():
    s = selection()
    default = s.capped(50, "uniform")
    np.testing.assert_array_equal(default[0], s.capped(50, "uniform", seed=0)[0])
    assert not np.array_equal(default[0], s.capped(50, "uniform", seed=5)[0])


def test_sampling_keys_count_a_confidence_under_the_minimum_or_nan_as_the_minimum():
    from serve_app.export.points import MIN_CONFIDENCE, sampling_keys

    keys = sampling_keys(5, np.array([0.0, np.nan, -3.0, MIN_CONFIDENCE, 2.0]), seed=2)
    u = 1 - np.random.default_rng(2).random(5, dtype=np.float32)  # in (0, 1]
    expected = np.log(u).astype(np.float64) / [MIN_CONFIDENCE, MIN_CONFIDENCE, MIN_CONFIDENCE, MIN_CONFIDENCE, 2.0]
    assert np.all(np.isfinite(keys))
    np.testing.assert_allclose(keys, expected, rtol=1e-6)
