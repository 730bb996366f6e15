"""Order statistics from a window: exactly numpy's answers, on the windowed path and on the fallback.

Arrays from WHOLE_BELOW values up take the windowed path; the adversarial
arrays below make the strided sample misjudge, so the fallback runs.
"""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.export import ranks
from serve_app.export.ranks import (
    WHOLE_BELOW,
    median,
    percentile,
    sorted_values,
    top_indices,
)

LARGE = WHOLE_BELOW + 12_345  # windowed path


def _arrays():
    rng = np.random.default_rng(11)
    yield "uniform f32", rng.uniform(1, 5, LARGE).astype(np.float32)
    yield "heavy tail f32", (1 + np.exp(rng.normal(0, 2, LARGE))).astype(np.float32)
    yield "few values", rng.integers(0, 7, LARGE).astype(np.float32)  # ties everywhere
    yield "f64 with infinities", np.concatenate([rng.normal(size=LARGE), [np.inf, -np.inf]])
    yield "small", rng.uniform(0, 1, 1001).astype(np.float32)  # partitioned whole


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy's, on inf - inf
@pytest.mark.parametrize("name, values", list(_arrays()))
@pytest.mark.parametrize("q", [0, 0.001, 3.0, 12.5, 50, 97.3, 99.9999, 100, np.float64(5), np.float32(95)])
def test_percentile_is_numpys_to_the_last_bit(name, values, q):
    expected = float(np.percentile(values, q))
    assert percentile(values, q) == expected or (np.isnan(expected) and np.isnan(percentile(values, q)))


def test_percentile_of_an_array_with_nan_is_nan_as_in_numpy():
    values = np.random.default_rng(2).uniform(size=LARGE).astype(np.float32)
    values[123] = np.nan
    assert np.isnan(percentile(values, 3.0)) and np.isnan(np.percentile(values, 3.0))


def _misleading(count: int) -> np.ndarray:
    """The strided sample sees only 1.0; every other value is below it."""
    values = np.zeros(count, np.float32)
    values[:: count // ranks.SAMPLE_SIZE] = 1.0
    return values + np.linspace(0, 0.5, count, dtype=np.float32) * (values == 0)


def test_a_misleading_sample_falls_back_to_the_whole_array(monkeypatch):
    values = _misleading(LARGE)
    calls = []
    real_partition = np.partition
    monkeypatch.setattr(ranks.np, "partition", lambda a, kth: calls.append(len(a)) or real_partition(a, kth))
    assert percentile(values, 40.0) == float(np.percentile(values, 40.0))
    assert calls[-1] == LARGE  # the fallback partitioned every value
    calls.clear()
    assert percentile(np.random.default_rng(1).uniform(size=LARGE), 40.0) > 0
    assert calls[-1] < LARGE // 20  # an honest sample: only the window (2-3 % of the values at 40 %)


@pytest.mark.parametrize("count", [LARGE, LARGE + 1, 999, 1000])
def test_median_is_numpys(count):
    values = np.random.default_rng(count).normal(size=count).astype(np.float32)
    assert median(values) == np.median(values)
    assert median(np.round(values)) == np.median(np.round(values))  # ties at the middle


def test_sorted_values_are_those_of_a_full_sort():
    values = np.random.default_rng(4).normal(size=LARGE)
    wanted = [0, 1, LARGE // 3, LARGE // 3 + 1, LARGE - 1]
    np.testing.assert_array_equal(sorted_values(values, wanted), np.sort(values)[wanted])


def stable_top(keys: np.ndarray, k: int) -> np.ndarray:
    """Reference: the k largest keys, the earlier point first among equal keys, by a full stable sort."""
    return np.sort(np.argsort(-keys, kind="stable")[:k])


@pytest.mark.parametrize(
    "keys",
    [
        np.random.default_rng(5).normal(size=LARGE).astype(np.float32),
        np.random.default_rng(6).integers(0, 50, LARGE).astype(np.float32),  # ties at every cut
        _misleading(LARGE),
        np.arange(20, dtype=np.float32) % 3,
    ],
    ids=["distinct", "ties", "misleading sample", "small"],
)
def test_top_indices_are_the_largest_keys_earlier_first_on_ties(keys):
    count = len(keys)
    for k in {0, 1, 2, count // 20, count // 2, count - 1, count, count + 1}:
        np.testing.assert_array_equal(top_indices(keys, k), stable_top(keys, k), err_msg=f"k={k}")


def test_top_indices_keep_the_largest_not_the_smallest():
    keys = np.arange(LARGE, dtype=np.float32)
    np.testing.assert_array_equal(top_indices(keys, 10), np.arange(LARGE - 10, LARGE))
