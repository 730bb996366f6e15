"""Exact order statistics of large arrays, partitioning only a window around them.

`np.percentile` and `np.argpartition` reorder a copy of the whole array. The
export asks for a few ranks of tens of millions of values (the confidence
percentile, the point cap's largest keys), so a strided sample first places
the wanted ranks between two bounds; one pass counts the values below the
lower bound and gathers those between, and only that window (1-3 %
of the array) is partitioned. Where the sample misjudges (the window misses a
wanted rank) the whole array is partitioned: the answer is the same either way.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_SIZE = 65_536  # values in the strided sample (between this and twice this many)
WHOLE_BELOW = 262_144  # arrays shorter than this are partitioned whole (as fast, no sample needed)
SPREAD_SIGMAS = 6.0  # the window's half-width, in standard deviations of a sample rank


def _sorted_sample(values: np.ndarray) -> np.ndarray:
    return np.sort(values[:: len(values) // SAMPLE_SIZE])


def _sample_position(rank: int, count: int, sample_count: int, side: int) -> int:
    """Where `rank` of `count` lands in a sorted sample of `sample_count`, moved `side` (-1, +1) by the margin."""
    share = rank / count
    spread = SPREAD_SIGMAS * math.sqrt(sample_count * share * (1 - share)) + 16
    return math.floor(share * sample_count + side * spread)


def sorted_values(values: np.ndarray, ranks: list[int]) -> np.ndarray:
    """`np.sort(values)[ranks]` for a 1-D array without NaN and ascending 0-based ranks."""
    ranks_array = np.asarray(ranks, np.intp)
    count = len(values)
    if count >= WHOLE_BELOW:
        sample = _sorted_sample(values)
        low_at = _sample_position(ranks[0], count, len(sample), -1)
        high_at = _sample_position(ranks[-1], count, len(sample), +1)
        has_low, has_high = low_at > 0, high_at < len(sample) - 1
        if has_low or has_high:
            below, inside = 0, None
            if has_low:
                inside = values >= sample[low_at]
                below = count - int(np.count_nonzero(inside))
            if has_high:
                under_high = values <= sample[high_at]
                inside = under_high if inside is None else np.logical_and(inside, under_high, out=inside)
            window = values[inside]
            if below <= ranks[0] and ranks[-1] < below + len(window):
                window_ranks = ranks_array - below
                return np.partition(window, window_ranks)[window_ranks]
    return np.partition(values, ranks_array)[ranks_array]


def percentile(values: np.ndarray, q: float) -> float:
    """Exactly `float(np.percentile(values, q))` (linear method) for a 1-D array, q in [0, 100].

    The two order statistics numpy interpolates between come from `sorted_values`;
    numpy's own interpolation then runs on those two (`np.quantile` of a pair at the
    same weight, in the same precision), so the result agrees to the last bit.
    """
    count = values.size
    if count < WHOLE_BELOW or values.dtype.kind != "f" or np.isnan(values.max()):
        return float(np.percentile(values, q))  # NaN makes numpy's answer NaN; leave that to numpy
    virtual = (count - 1) * np.true_divide(q, 100)  # numpy's steps, in the dtype numpy gets for q
    previous = np.floor(virtual)
    following = previous + 1
    lower, upper = (count - 1, count - 1) if virtual >= count - 1 else (int(previous), int(following))
    gamma = virtual - previous
    pair = sorted_values(values, sorted({lower, upper}))
    pair = np.array([pair[0], pair[-1]], values.dtype)
    weight = float(gamma) if type(q) in (int, float) else gamma  # numpy's weak promotion of a Python q
    return float(np.quantile(pair, weight))


def median(values: np.ndarray) -> np.ndarray:
    """Exactly `np.median(values)` for a 1-D float array: the mean of its middle one or two values."""
    count = values.size
    if count < WHOLE_BELOW or values.dtype.kind != "f" or np.isnan(values.max()):
        return np.median(values)
    middle = sorted({(count - 1) // 2, count // 2})
    return np.mean(sorted_values(values, middle))


def top_indices(keys: np.ndarray, k: int) -> np.ndarray:
    """Ascending positions of the `k` largest of the 1-D `keys` (no NaN).

    Among keys equal to the k-th largest, the earliest positions are kept, so
    the choice does not depend on how the partition orders ties.
    """
    count = len(keys)
    if k >= count:
        return np.arange(count)
    if k <= 0:
        return np.empty(0, np.intp)
    candidates = None
    if count >= WHOLE_BELOW:
        sample = _sorted_sample(keys)
        low_at = _sample_position(count - k, count, len(sample), -1)
        if low_at > 0:
            candidates = np.flatnonzero(keys >= sample[low_at])
            if len(candidates) < k:  # the sample misjudged: every key is a candidate
                candidates = None
    if candidates is None:
        candidates = np.arange(count)
    values = keys[candidates]
    kth = np.partition(values, len(values) - k)[len(values) - k]  # the k-th largest
    chosen = values > kth
    ties = np.flatnonzero(values == kth)[: k - int(np.count_nonzero(chosen))]
    chosen[ties] = True
    return candidates[chosen]
