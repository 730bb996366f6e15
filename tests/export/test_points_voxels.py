"""Voxel merging against a slow reference of its documented search: the cell size is bisected (geometrically)
between largest/GRID_LIMIT and the cloud's largest extent, on a seeded sample of SEARCH_SAMPLE distinct points
when the cloud is larger, stopping at the first cell leaving between 95 % and 100 % of `max_points` cells
(one cell for the whole cloud when no size searched leaves `max_points` or fewer); each occupied cell then
gives its mean point and rounded mean colour, in cell order (x, then y, then z)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from serve_app.export.points import GRID_LIMIT, SEARCH_SAMPLE, Selection, cap_points, voxel_downsample


def cell_numbers(cells: np.ndarray) -> np.ndarray:
    """One number per cell (i, j, k), each below GRID_LIMIT."""
    return (cells[:, 0] * GRID_LIMIT + cells[:, 1]) * GRID_LIMIT + cells[:, 2]


def reference_cell(vertices: np.ndarray, max_points: int, *, rounds: int = 12, seed: int = 0) -> float:
    points = np.asarray(vertices, np.float64)
    lower = points.min(axis=0)
    largest = max(float((points.max(axis=0) - lower).max()), 1e-12)
    if len(points) > SEARCH_SAMPLE:
        points = points[np.random.default_rng(seed).choice(len(points), SEARCH_SAMPLE, replace=False)]
    small, large = largest / GRID_LIMIT, largest
    cell = math.inf
    for _ in range(rounds):
        middle = math.sqrt(small * large)
        occupied = len(np.unique(cell_numbers(np.floor((points - lower) / middle).astype(np.int64))))
        if occupied > max_points:
            small = middle
        else:
            large = cell = middle
            if occupied >= 0.95 * max_points:
                break
    return cell


def reference_merge(vertices: np.ndarray, colors: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean point and rounded mean colour of each occupied cell, one cell at a time."""
    points = np.asarray(vertices, np.float64)
    cells = np.floor((points - points.min(axis=0)) / cell).astype(np.int64)
    _, group = np.unique(cell_numbers(cells), return_inverse=True)
    order = np.argsort(group, kind="stable")
    starts = np.flatnonzero(np.diff(group[order], prepend=-1))
    groups = np.split(order, starts[1:])
    means = [points[members].mean(axis=0) for members in groups]
    mean_colors = [np.round(colors[members].astype(np.float64).mean(axis=0)) for members in groups]
    return np.array(means), np.array(mean_colors, np.uint8)


def in_order(vertices: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort(np.asarray(vertices, np.float64).T[::-1])
    return np.asarray(vertices, np.float64)[order], colors[order]


def assert_same_cloud(actual, expected, atol=1e-5):
    (vertices, colors), (expected_vertices, expected_colors) = in_order(*actual), in_order(*expected)
    assert vertices.shape == expected_vertices.shape
    np.testing.assert_allclose(vertices, expected_vertices, rtol=0, atol=atol)
    np.testing.assert_array_equal(colors, expected_colors)


def random_cloud(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points on a 1/1024 lattice (exact in float64 under power-of-two scaling and shifts), distinct colours."""
    rng = np.random.default_rng(seed)
    vertices = rng.integers(0, 4 * 1024, (count, 3)) / 1024.0
    vertices[:, 2] *= 0.5  # extents differ per axis
    return vertices, rng.integers(0, 256, (count, 3), dtype=np.uint8)


def lattice(count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` points one unit apart along x: every cell size leaves a known number of cells."""
    x = np.arange(count, dtype=np.float64)
    vertices = np.stack([x, np.zeros_like(x), np.zeros_like(x)], axis=1)
    return vertices, (np.arange(count) % 256).astype(np.uint8)[:, None].repeat(3, axis=1)


CLOUDS = {
    "random": lambda: random_cloud(3_000, 11),
    "lattice 100": lambda: lattice(100),
    "lattice 37": lambda: lattice(37),
    "lattice 1000": lambda: lattice(1_000),
}


CLOUD_SIZES = {"random": 3_000, "lattice 100": 100, "lattice 37": 37, "lattice 1000": 1_000}
MERGES = [  # a cap under the cloud's size: at or over it there is nothing to merge
    (cloud, max_points)
    for cloud in CLOUDS
    for max_points in (1, 2, 7, 20, 21, 40, 100, 333)
    if max_points < CLOUD_SIZES[cloud]
]


@pytest.mark.parametrize(("cloud", "max_points"), MERGES)
def test_voxel_merging_is_the_reference_search_and_merge(cloud, max_points):
    vertices, colors = CLOUDS[cloud]()
    assert len(vertices) == CLOUD_SIZES[cloud]
    cell = reference_cell(vertices, max_points)
    merged = voxel_downsample(vertices, colors, max_points)
    assert merged[0].dtype == np.float32 and merged[1].dtype == np.uint8
    assert_same_cloud(merged, reference_merge(vertices, colors, cell))


@pytest.mark.parametrize("max_points", [10, 150, 700])
def test_merging_follows_the_cloud_when_it_is_shifted_or_scaled(max_points):
    vertices, colors = random_cloud(2_000, 12)
    merged, merged_colors = voxel_downsample(vertices, colors, max_points)
    shift = np.array([64.0, -32.0, 512.0])
    assert_same_cloud(voxel_downsample(vertices + shift, colors, max_points), (merged + shift, merged_colors), 1e-4)
    for scale in (2.0**-12, 2.0**-3, 2.0**5):  # extents under and over 1
        assert_same_cloud(voxel_downsample(vertices * scale, colors, max_points), (merged * scale, merged_colors),
                          1e-6 * max(scale, 1e-3))


def test_cells_are_told_apart_across_the_whole_grid():
    # the search runs down to the finest cells (about 1/GRID_LIMIT of the extent 1) without reaching 95 % of
    # the cap; points 2**20 cells up the y axis must not share a cell with the one point 1 cell along x
    column = np.arange(0.52, 0.53, 1e-7)
    vertices = np.concatenate([
        [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [7.5e-7, 0.0, 0.0]],
        np.stack([np.zeros_like(column), column, np.zeros_like(column)], axis=1),
    ])
    colors = np.zeros((len(vertices), 3), np.uint8)
    colors[2] = (9, 9, 9)
    merged, merged_colors = voxel_downsample(vertices, colors, 1_000_000)
    alone = np.flatnonzero((merged_colors == 9).all(axis=1))
    assert len(alone) == 1
    np.testing.assert_allclose(merged[alone[0]], [7.5e-7, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(merged[np.lexsort(merged.T[::-1])[:1]], [[0.0, 0.0, 0.0]])


def big_cloud() -> tuple[np.ndarray, np.ndarray]:
    """Over SEARCH_SAMPLE points: a few dense clumps and 3000 lone points, some of them outside the sample."""
    rng = np.random.default_rng(13)
    lone = rng.uniform(0, 100, (3_000, 3))
    clumps = rng.uniform(0, 100, (40, 3))[rng.integers(0, 40, SEARCH_SAMPLE + 197_000)]
    vertices = np.concatenate([clumps + rng.normal(0, 0.01, clumps.shape), lone]).astype(np.float32)
    return vertices, rng.integers(0, 256, (len(vertices), 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def big():
    return big_cloud()


def test_a_cloud_over_the_search_sample_is_searched_on_a_seeded_sample(big):
    vertices, colors = big
    expected = reference_merge(vertices, colors, reference_cell(vertices, 2_000, seed=0))
    assert_same_cloud(voxel_downsample(vertices, colors, 2_000), expected, 1e-4)


def test_a_selection_over_the_search_sample_thins_a_merge_left_over_its_cap(big):
    vertices, _ = big
    count = len(vertices)
    images = np.random.default_rng(14).random((1, 3, 1, count), dtype=np.float32)
    selection = Selection(points=vertices, confidence=np.ones(count, np.float32), images=images,
                          kept=np.arange(count))
    merged, _ = voxel_downsample(vertices, selection.colors(selection.kept), 2_000)
    assert len(merged) > 2_000  # the lone points outside the sample add cells: the cap thins them
    capped = selection.capped(2_000, "voxel", seed=5)
    assert len(capped[0]) == 2_000
    expected = cap_points(vertices, selection.colors(selection.kept), 2_000, method="voxel", seed=5)
    np.testing.assert_array_equal(capped[0], expected[0])
    np.testing.assert_array_equal(capped[1], expected[1])


def corners() -> tuple[np.ndarray, np.ndarray]:
    """The 8 corners of a unit cube: every cell smaller than the cube leaves 8 cells."""
    vertices = np.array([[x, y, z] for x in (0.0, 1.0) for y in (0.0, 1.0) for z in (0.0, 1.0)])
    return vertices, (np.arange(24).reshape(8, 3) * 10).astype(np.uint8)


@pytest.mark.parametrize(("max_points", "cells"), [(1, 1), (7, 1), (8, 8), (9, 8)])
def test_a_cap_no_grid_reaches_merges_the_whole_cloud_into_one_point(max_points, cells):
    # under 8 no cell size leaves few enough cells: the whole cloud becomes its mean point; at 8 and over each
    # corner keeps its own cell
    vertices, colors = corners()
    merged, merged_colors = voxel_downsample(vertices, colors, max_points)
    assert len(merged) == cells
    if cells == 1:
        np.testing.assert_array_equal(merged, [[0.5, 0.5, 0.5]])
        np.testing.assert_array_equal(merged_colors, [np.round(colors.mean(axis=0))])
    else:
        assert_same_cloud((merged, merged_colors), (vertices, colors))


def test_a_cap_of_one_merges_a_lattice_into_its_mean():
    vertices, colors = lattice(100)
    merged, merged_colors = voxel_downsample(vertices, colors, 1)
    np.testing.assert_array_equal(merged, [[49.5, 0.0, 0.0]])
    np.testing.assert_array_equal(merged_colors, [np.round(colors.astype(np.float64).mean(axis=0))])
    capped, _ = cap_points(vertices, colors, 1, method="voxel")
    np.testing.assert_array_equal(capped, merged)  # the mean, not one of two half-cloud means picked at random


def test_merged_cells_come_out_in_grid_order_across_the_whole_grid():
    # a cap no search reaches ends at the finest cells, about 1/GRID_LIMIT of the extent: x = 1 lies past
    # 2**20 cells along x, x = 0.25 under it; the cells still come out ordered by x, then y, then z
    vertices = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.25, 0.0, 1.0], [0.25, 0.0, 0.0], [0.0, 0.0, 0.0]])
    colors = np.arange(15, dtype=np.uint8).reshape(5, 3)
    merged, merged_colors = voxel_downsample(vertices, colors, 1_000_000)
    order = [4, 1, 3, 2, 0]
    np.testing.assert_array_equal(merged, vertices[order])
    np.testing.assert_array_equal(merged_colors, colors[order])


def lattice_hidden_from_the_sample(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """1000 lattice points far apart and a clump of identical points, over SEARCH_SAMPLE in all; only 10 of
    the lattice points are in the documented sample for `seed`."""
    count, lone = SEARCH_SAMPLE + 100_000, 1_000
    sampled = np.zeros(count, bool)
    sampled[np.random.default_rng(seed).choice(count, SEARCH_SAMPLE, replace=False)] = True
    places = np.concatenate([np.flatnonzero(sampled)[:10], np.flatnonzero(~sampled)[: lone - 10]])
    vertices = np.full((count, 3), 4.5, np.float32)
    vertices[places] = np.stack(np.meshgrid(*[np.arange(10.0)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    colors = np.zeros((count, 3), np.uint8)
    colors[places] = 200
    return vertices, colors


@pytest.mark.parametrize("seed", [0, 7])
def test_the_search_sees_only_the_sample_drawn_with_its_seed(seed):
    # only 10 lattice points are in the sample, so the search stops at its first size (11 cells there) and
    # the whole cloud keeps 1001 cells; any other sample holds about 909 of them and ends coarser
    vertices, colors = lattice_hidden_from_the_sample(seed)
    cell = reference_cell(vertices, 11, seed=seed)
    merged = voxel_downsample(vertices, colors, 11, seed=seed)
    assert len(merged[0]) == 1_000 + 1
    assert_same_cloud(merged, reference_merge(vertices, colors, cell))


def test_cap_points_hands_its_seed_to_the_voxel_search():
    vertices, colors = lattice_hidden_from_the_sample(7)
    capped = cap_points(vertices, colors, 11, method="voxel", seed=7)
    merged = voxel_downsample(vertices, colors, 11, seed=7)  # 1001 cells, then thinned with the same seed
    expected = cap_points(*merged, 11, method="uniform", seed=7)
    np.testing.assert_array_equal(capped[0], expected[0])
    np.testing.assert_array_equal(capped[1], expected[1])
