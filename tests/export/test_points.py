"""Point selection and capping against the hand-checkable predictions of conftest.py."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.export.points import (
    MIN_CONFIDENCE,
    cap_indices,
    cap_points,
    confidence_threshold,
    sampling_keys,
    select,
    select_points,
    voxel_downsample,
)
from serve_app.export.options import ExportOptions


def kept_indices(vertices: np.ndarray) -> list[int]:
    """Point-map points sit at x = k + 1: recover k."""
    return [int(x) - 1 for x in vertices[:, 0]]


def test_default_percentile_drops_the_least_confident_point(predictions):
    vertices, colors = select_points(predictions)  # 3rd percentile of 1..8 is 1.21
    assert kept_indices(vertices) == [1, 2, 3, 4, 5, 6, 7]
    np.testing.assert_array_equal(vertices[0], [2, 10, 100])


def test_colors_are_the_image_bytes_of_the_kept_pixels(predictions, helpers):
    _, colors = select_points(predictions, ExportOptions(conf_percentile=0))
    assert colors.dtype == np.uint8
    np.testing.assert_array_equal(colors, helpers.colors)


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [(0, list(range(8))), (50, [4, 5, 6, 7]), (100, [7]), (12.5, [1, 2, 3, 4, 5, 6, 7])],
)
def test_percentile_threshold(predictions, percentile, expected):
    vertices, _ = select_points(predictions, ExportOptions(conf_percentile=percentile))
    assert kept_indices(vertices) == expected


def test_threshold_is_numpy_percentile_and_zero_means_none():
    conf = np.arange(1, 9, dtype=np.float32)
    assert confidence_threshold(conf, 3.0) == pytest.approx(1.21)
    assert confidence_threshold(conf, 0.0) == 0.0


@pytest.mark.parametrize("percentile", [-1.0, 100.5, 101.0, True, "3"])
def test_percentile_range_is_checked_once_in_the_options(percentile):
    with pytest.raises(ValueError, match="conf_percentile"):
        ExportOptions(conf_percentile=percentile)


def test_near_zero_confidence_is_always_dropped(predictions):
    conf = predictions["world_points_conf"].reshape(-1)
    conf[5] = 1e-5
    conf[6] = 2e-5
    vertices, _ = select_points(predictions, ExportOptions(conf_percentile=0))
    assert kept_indices(vertices) == [0, 1, 2, 3, 4, 6, 7]


def test_black_background_mask_uses_rgb_sum_below_16(predictions):
    vertices, _ = select_points(predictions, ExportOptions(conf_percentile=0, mask_black_bg=True))
    assert kept_indices(vertices) == [1, 2, 3, 4, 5, 6, 7]


def test_white_background_mask_needs_all_channels_above_240(predictions):
    vertices, _ = select_points(predictions, ExportOptions(conf_percentile=0, mask_white_bg=True))
    assert kept_indices(vertices) == [0, 2, 3, 4, 5, 6, 7]


def test_both_masks_and_the_percentile_combine(predictions):
    vertices, _ = select_points(predictions, ExportOptions(conf_percentile=50, mask_black_bg=True, mask_white_bg=True))
    assert kept_indices(vertices) == [4, 5, 6, 7]
    vertices, _ = select_points(predictions, ExportOptions(conf_percentile=0, mask_black_bg=True, mask_white_bg=True))
    assert kept_indices(vertices) == [2, 3, 4, 5, 6, 7]


def test_depth_source_uses_unprojected_points_and_depth_confidence(predictions):
    vertices, colors = select_points(predictions, ExportOptions(source="depth", conf_percentile=50))
    # depth confidence is 8 - k: the 50th percentile (4.5) keeps k = 0..3
    np.testing.assert_array_equal(vertices[:, 0], [-1, -2, -3, -4])
    np.testing.assert_array_equal(vertices[:, 1:], [[20, 200]] * 4)


def test_pointmap_falls_back_to_depth_points_when_absent(predictions):
    del predictions["world_points"]
    vertices, _ = select_points(predictions, ExportOptions(source="pointmap", conf_percentile=0))
    np.testing.assert_array_equal(vertices[:, 0], -np.arange(1, 9))


def test_single_frame_and_its_own_percentile(predictions):
    vertices, colors = select_points(predictions, ExportOptions(frame=1, conf_percentile=0))
    assert kept_indices(vertices) == [4, 5, 6, 7]
    vertices, _ = select_points(predictions, ExportOptions(frame=1, conf_percentile=50))  # of 5..8: 6.5
    assert kept_indices(vertices) == [6, 7]
    vertices, _ = select_points(predictions, ExportOptions(frame=-2, conf_percentile=0))
    assert kept_indices(vertices) == [0, 1, 2, 3]


@pytest.mark.parametrize("frame", [2, -3, 1.0, True])
def test_bad_frame_is_refused(predictions, frame):
    with pytest.raises(ValueError):
        select_points(predictions, ExportOptions(frame=frame))


def test_bad_source_is_refused(predictions):
    with pytest.raises(ValueError, match="source"):
        select_points(predictions, ExportOptions(source="mesh"))


def test_confidence_scale_removes_masked_pixels_first(predictions):
    scale = np.ones((2, 2, 2), np.float32)
    scale[0, 1, 1] = 0  # k = 3
    vertices, _ = select_points(predictions, ExportOptions(conf_percentile=0), conf_scale=scale)
    assert kept_indices(vertices) == [0, 1, 2, 4, 5, 6, 7]


def _cloud(count: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(count, 3)).astype(np.float32), rng.integers(0, 256, (count, 3), dtype=np.uint8)


def test_no_cap_or_a_high_cap_keeps_everything():
    vertices, colors = _cloud(100)
    assert cap_points(vertices, colors, None)[0] is vertices
    assert len(cap_points(vertices, colors, 100)[0]) == 100


def test_uniform_cap_is_a_seeded_ordered_subset():
    vertices, colors = _cloud(1000)
    capped, capped_colors = cap_points(vertices, colors, 100)
    again, _ = cap_points(vertices, colors, 100)
    assert len(capped) == 100
    np.testing.assert_array_equal(capped, again)
    index = [int(np.flatnonzero((vertices == v).all(axis=1))[0]) for v in capped]
    assert index == sorted(index)  # original order kept
    np.testing.assert_array_equal(capped_colors, colors[index])


def test_voxel_cap_merges_clusters_into_their_means():
    rng = np.random.default_rng(2)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], np.float32)
    vertices = np.repeat(centres, 250, axis=0) + rng.uniform(-0.01, 0.01, (1000, 3)).astype(np.float32)
    colors = np.repeat(np.array([[0, 0, 0], [100, 0, 0], [0, 200, 0], [0, 0, 255]], np.uint8), 250, axis=0)
    capped, capped_colors = cap_points(vertices, colors, 4, method="voxel")
    order = np.argsort(capped @ np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(capped[order], centres[[0, 1, 2, 3]], atol=0.01)
    assert sorted(map(tuple, capped_colors.tolist())) == [(0, 0, 0), (0, 0, 255), (0, 200, 0), (100, 0, 0)]


def test_voxel_cap_respects_the_limit_on_a_surface():
    rng = np.random.default_rng(3)
    uv = rng.uniform(0, 1, (20000, 2)).astype(np.float32)
    vertices = np.column_stack([uv, 0.1 * np.sin(6 * uv[:, 0])]).astype(np.float32)
    colors = np.zeros((20000, 3), np.uint8)
    capped, _ = cap_points(vertices, colors, 500, method="voxel")
    assert 250 <= len(capped) <= 500
    assert np.all(capped.min(axis=0) >= vertices.min(axis=0) - 1e-6)
    assert np.all(capped.max(axis=0) <= vertices.max(axis=0) + 1e-6)
    merged, _ = voxel_downsample(vertices, colors, 500)
    assert len(merged) >= len(capped)


@pytest.mark.parametrize(
    "options", [{"downsample": "random"}, {"max_points": 0}, {"max_points": 2.5}, {"source": "mesh"}, {"frame": "1"}]
)
def test_options_refuse_what_the_export_cannot_do(options):
    with pytest.raises(ValueError, match="export"):
        ExportOptions(**options)


@pytest.mark.parametrize("channels_first", [True, False])
def test_selection_reads_exactly_the_colours_of_the_pixels_asked(channels_first):
    from serve_app.export.points import pixel_colors, select

    rng = np.random.default_rng(5)
    S, H, W = 3, 7, 11
    images = rng.uniform(0, 1, (S, 3, H, W)).astype(np.float32)
    if not channels_first:
        images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    predictions = {
        "world_points": rng.normal(size=(S, H, W, 3)).astype(np.float32),
        "world_points_conf": rng.uniform(1, 2, (S, H, W)).astype(np.float32),
        "images": images,
    }
    selection = select(predictions, ExportOptions(conf_percentile=20))
    assert len(selection.kept) == pytest.approx(0.8 * S * H * W, abs=2)
    picked = rng.choice(selection.kept, 40, replace=False)
    np.testing.assert_array_equal(selection.colors(picked), pixel_colors(images)[picked])
    np.testing.assert_array_equal(selection.vertices(picked), predictions["world_points"].reshape(-1, 3)[picked])


# --- the confidence percentile at its boundaries


def _flat(conf) -> dict[str, np.ndarray]:
    """One frame, one row: point k at x = k + 1 with confidence conf[k]."""
    conf = np.asarray(conf)
    k = np.arange(len(conf), dtype=np.float32)
    points = np.stack([k + 1, np.zeros_like(k), np.ones_like(k)], axis=1)
    return {
        "world_points": points.reshape(1, 1, -1, 3),
        "world_points_conf": conf.reshape(1, 1, -1),
        "images": np.full((1, 3, 1, len(conf)), 0.5, np.float32),
    }


def test_a_confidence_exactly_at_the_threshold_is_kept():
    # 9 values: the 50th percentile is the 5th value itself (5), no interpolation
    vertices, _ = select_points(_flat(np.arange(1, 10, dtype=np.float32)), ExportOptions(conf_percentile=50))
    assert kept_indices(vertices) == [4, 5, 6, 7, 8]


def test_a_confidence_just_under_the_threshold_is_dropped():
    conf = np.arange(1, 10, dtype=np.float32)
    conf[3] = np.nextafter(np.float32(5), np.float32(0))  # one step under the 50th percentile (5)
    conf[5] = np.nextafter(np.float32(5), np.float32(9))  # one step over it
    vertices, _ = select_points(_flat(conf), ExportOptions(conf_percentile=50))
    assert kept_indices(vertices) == [4, 5, 6, 7, 8]


def test_percentile_100_keeps_every_point_at_the_maximum():
    vertices, _ = select_points(_flat(np.array([3, 9, 1, 9, 8], np.float32)), ExportOptions(conf_percentile=100))
    assert kept_indices(vertices) == [1, 3]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_min_confidence_is_dropped_and_the_next_value_up_kept(dtype):
    at = dtype(1e-5)
    conf = np.array([at, np.nextafter(at, dtype(1)), np.nextafter(at, dtype(0)), 1.0], dtype)
    vertices, _ = select_points(_flat(conf), ExportOptions(conf_percentile=0))
    assert kept_indices(vertices) == [1, 3]


def test_integer_confidence_is_compared_as_before():
    vertices, _ = select_points(_flat(np.array([0, 1, 2, 3], np.int64)), ExportOptions(conf_percentile=0))
    assert kept_indices(vertices) == [1, 2, 3]


LARGE = 300_000  # over ranks.WHOLE_BELOW: the windowed percentile and cut


def previous_kept(conf: np.ndarray, percentile: float) -> np.ndarray:
    """The selection as it was written before the windowed percentile: np.percentile, two comparisons."""
    threshold = float(np.percentile(conf, percentile)) if percentile else 0.0
    return np.flatnonzero((conf >= threshold) & (conf > MIN_CONFIDENCE))


@pytest.mark.parametrize("percentile", [3.0, 12.5, 50, 99.5])
@pytest.mark.parametrize("kind", ["uniform", "heavy tail", "repeated values"])
def test_selection_is_the_previous_selection_on_large_inputs(percentile, kind):
    rng = np.random.default_rng(21)
    conf = {
        "uniform": rng.uniform(0, 5, LARGE),
        "heavy tail": 1 + np.exp(rng.normal(0, 2, LARGE)),
        "repeated values": rng.integers(0, 9, LARGE) * 0.5,
    }[kind].astype(np.float32)
    conf[:100] = MIN_CONFIDENCE  # never kept
    selection = select(_flat(conf), ExportOptions(conf_percentile=percentile))
    np.testing.assert_array_equal(selection.kept, previous_kept(conf, percentile))


# --- the point cap keeps confident points, exactly max_points of them


def previous_cap(confidence: np.ndarray, max_points: int) -> np.ndarray:
    """The confidence cap as it was written before: every key partitioned (ties cut wherever it fell)."""
    count = len(confidence)
    uniform = 1 - np.random.default_rng(0).random(count, dtype=np.float32)
    keys = np.log(uniform) / np.maximum(confidence, MIN_CONFIDENCE)
    return np.sort(np.argpartition(keys, count - max_points)[count - max_points :]), keys


@pytest.mark.parametrize("count, max_points", [(LARGE, 15_000), (LARGE, 250_000), (5_000, 400)])
def test_confidence_cap_is_the_previous_cap(count, max_points):
    confidence = (1 + np.exp(np.random.default_rng(count).normal(0, 1.5, count))).astype(np.float32)
    before, keys = previous_cap(confidence, max_points)
    cut = np.sort(keys)[count - max_points]
    assert np.count_nonzero(keys == cut) == 1  # no tie at the cut on these inputs: one right answer
    np.testing.assert_array_equal(cap_indices(count, max_points, method="confidence", confidence=confidence), before)


def test_confidence_cap_cuts_ties_at_the_earlier_points():
    confidence = np.ones(LARGE, np.float32)
    confidence[::2] = 2.0
    keys = sampling_keys(LARGE, confidence)
    chosen = cap_indices(LARGE, 20_000, method="confidence", confidence=confidence)
    np.testing.assert_array_equal(chosen, np.sort(np.argsort(-keys, kind="stable")[:20_000]))


def test_confidence_cap_prefers_confident_points():
    confidence = np.where(np.arange(10_000) % 2 == 0, 50.0, 1.0).astype(np.float32)
    chosen = cap_indices(10_000, 1_000, method="confidence", confidence=confidence)
    assert len(chosen) == 1_000
    assert np.mean(chosen % 2 == 0) > 0.95  # weights 50 against 1: about 98 % of the kept are confident


def test_the_most_confident_point_survives_a_cap_of_one():
    vertices, colors = _cloud(1_000)
    confidence = np.ones(1_000, np.float32)
    confidence[637] = 1e9
    capped, capped_colors = cap_points(vertices, colors, 1, method="confidence", confidence=confidence)
    np.testing.assert_array_equal(capped, vertices[[637]])
    np.testing.assert_array_equal(capped_colors, colors[[637]])


def test_the_export_cap_keeps_the_confident_half():
    conf = np.where(np.arange(20_000) < 10_000, 50.0, 1.0).astype(np.float32)  # points 0..9999 confident
    selection = select(_flat(conf), ExportOptions(conf_percentile=0))
    vertices, _ = selection.capped(2_000, "confidence")
    assert len(vertices) == 2_000
    assert np.mean(vertices[:, 0] <= 10_000) > 0.95


@pytest.mark.parametrize("method", ["confidence", "uniform", "voxel"])
@pytest.mark.parametrize("over", [-1, 0])
def test_at_or_under_the_cap_every_point_is_kept_in_order(method, over):
    conf = np.linspace(1, 5, 50, dtype=np.float32)
    selection = select(_flat(conf), ExportOptions(conf_percentile=0))
    vertices, colors = selection.capped(50 - over, method)
    np.testing.assert_array_equal(vertices, selection.vertices(np.arange(50)))
    np.testing.assert_array_equal(colors, selection.colors(np.arange(50)))


@pytest.mark.parametrize("method", ["confidence", "uniform"])
def test_one_over_the_cap_drops_exactly_one_point(method):
    conf = np.full(51, 1e4, np.float32)
    conf[17] = 1e-3  # the least confident: the one the confidence cap drops
    selection = select(_flat(conf), ExportOptions(conf_percentile=0))
    vertices, _ = selection.capped(50, method)
    assert len(vertices) == 50
    assert kept_indices(vertices) == sorted(kept_indices(vertices))
    if method == "confidence":
        assert kept_indices(vertices) == [k for k in range(51) if k != 17]


def test_export_point_count_at_under_and_over_the_cap(predictions):
    from serve_app.export import export_glb

    # the default percentile keeps 7 of the 8 points
    assert [export_glb(predictions, ExportOptions(max_points=n)).point_count for n in (6, 7, 8)] == [6, 7, 7]
