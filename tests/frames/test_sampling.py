"""Sample times, the frame selector and the even-spacing cap, without video."""

from __future__ import annotations

import itertools

import pytest

from serve_app.frames.sampling import (
    FrameSelector,
    SampleGrid,
    even_indices,
    even_spacing,
    sample_count,
    sample_times,
)


def select(times, starts, window=0.0, scores=None):
    """Indices of the frames at `times` that a selector keeps."""
    score = (lambda i: scores[i]) if scores is not None else None
    selector = FrameSelector(starts, window, keep=lambda i: i, score=score)
    for i, t in enumerate(times):
        selector.offer(t, i)
    selector.finish()
    return selector.kept


def grid(t0, step):
    return (t0 + k * step for k in itertools.count())


@pytest.mark.parametrize(
    ("count", "limit", "expected"),
    [
        (5, 10, [0, 1, 2, 3, 4]),
        (10, 1, [0]),
        (10, 2, [0, 9]),
        (10, 4, [0, 3, 6, 9]),
        (0, 3, []),
    ],
)
def test_even_indices(count, limit, expected):
    assert even_indices(count, limit) == expected


def test_even_spacing_keeps_ends_and_limit():
    for count in range(1, 60):
        for limit in range(1, 20):
            picked = even_spacing(list(range(count)), limit)
            assert len(picked) == min(count, limit)
            assert picked[0] == 0
            if limit > 1:
                assert picked[-1] == count - 1


def test_sample_count_counts_times_up_to_the_last_frame():
    assert sample_count(0.0, 0.4) == 1
    assert sample_count(2.4999, 0.4) == 1
    assert sample_count(2.5, 0.4) == 2
    assert sample_count(59.97, 0.4) == 24


def test_sample_times_capped_and_uncapped():
    assert list(itertools.islice(sample_times(1.0, 0.5, 3.0, 64), 3)) == [1.0, 3.0, 5.0]
    capped = list(sample_times(0.0, 1.0, 99.0, 4))
    assert capped == [0.0, 33.0, 66.0, 99.0]
    assert list(itertools.islice(sample_times(0.0, 1.0, None, 4), 6)) == [0, 1, 2, 3, 4, 5]


def test_first_frame_at_or_after_each_time():
    times = [i / 10 for i in range(30)]  # 10 fps, 3 s
    assert select(times, grid(0.0, 1.0)) == [0, 10, 20]


def test_variable_frame_rate_uses_timestamps():
    times = [0.0, 0.1, 0.2, 1.7, 1.8, 2.05, 2.1, 4.4]
    assert select(times, grid(0.0, 1.0)) == [0, 3, 5, 7]


def test_a_frame_is_kept_once_when_sampling_faster_than_the_video():
    times = [0.0, 1.0, 2.0]
    assert select(times, grid(0.0, 0.25)) == [0, 1, 2]


def test_rounded_timestamps_count_as_on_time():
    times = [k * (1 / 3) for k in range(10)]  # 3 fps, sampled at 1 fps
    assert select(times, grid(0.0, 1.0)) == [0, 3, 6, 9]


def test_sharpest_frame_of_each_window():
    times = [i / 10 for i in range(25)]
    scores = [(i * 7) % 11 for i in range(25)]
    kept = select(times, grid(0.0, 1.0), window=1.0, scores=scores)
    expected = [max(range(a, min(a + 10, 25)), key=lambda i: scores[i]) for a in (0, 10, 20)]
    assert kept == expected


def test_sharpest_skips_empty_windows_and_closes_at_the_end():
    times = [0.0, 0.5, 3.2, 3.4]
    scores = [1.0, 2.0, 5.0, 4.0]
    assert select(times, grid(0.0, 1.0), window=1.0, scores=scores) == [1, 2]


def test_selector_reports_what_it_still_wants():
    selector = FrameSelector(iter([0.0, 2.0]), 0.0, keep=lambda i: i)
    assert selector.wanted_from == 0.0
    selector.offer(0.0, 0)
    assert selector.wanted_from == 2.0
    selector.offer(2.1, 1)
    assert selector.wanted_from is None and selector.kept == [0, 1]


def test_a_grid_coarsens_and_says_which_times_stay_on_it():
    grid = SampleGrid(1.0, 0.5)
    assert [next(grid) for _ in range(3)] == [1.0, 1.5, 2.0]
    grid.coarsen()  # stride 2: the next time moves up to k = 4
    assert next(grid) == 3.0 and next(grid) == 4.0
    assert grid.covers(2.0, 2.0) and not grid.covers(1.5, 1.9) and grid.covers(1.5, 2.0)


def test_sample_times_are_a_grid_unless_the_declared_length_caps_them():
    assert isinstance(sample_times(0.0, 1.0, None, 4), SampleGrid)
    assert isinstance(sample_times(0.0, 1.0, 2.0, 4), SampleGrid)  # fits: an understated span stays safe
    assert not isinstance(sample_times(0.0, 1.0, 99.0, 4), SampleGrid)


class Held:
    """A `keep` that counts the kept items still referenced by the selector."""

    def __init__(self) -> None:
        self.peak = 0
        self.selector: FrameSelector | None = None

    def __call__(self, item):
        assert self.selector is not None
        self.peak = max(self.peak, len(self.selector.kept) + 1)
        return item


@pytest.mark.parametrize(("window", "scores"), [(0.0, None), (1.0, [1.0] * 1000)])
def test_a_limited_selector_thins_as_it_goes_and_stays_evenly_spaced(window, scores):
    held = Held()
    score = (lambda i: scores[i]) if scores is not None else None
    selector = FrameSelector(SampleGrid(0.0, 1.0), window, keep=held, score=score, limit=4)
    held.selector = selector
    for i in range(1000):
        selector.offer(float(i), i)
        assert len(selector.kept) <= 4
    selector.finish()
    assert selector.kept == [0, 256, 512, 768] and held.peak <= 5
    assert selector.taken > 8


def test_a_limited_selector_thins_a_video_slower_than_the_samples():
    selector = FrameSelector(SampleGrid(0.0, 1.0), 0.0, keep=lambda i: i, limit=3)
    for i in range(100):
        selector.offer(4.0 * i, i)  # each frame covers four sample times
        assert len(selector.kept) <= 3
    kept = selector.kept
    assert kept[0] == 0 and kept[-1] >= 50 and len(set(b - a for a, b in zip(kept, kept[1:]))) == 1


def test_fixed_sample_times_are_never_thinned():
    selector = FrameSelector(iter([0.0, 1.0, 2.0]), 0.0, keep=lambda i: i, limit=1)
    for i in range(3):
        selector.offer(float(i), i)
    assert selector.kept == [0, 1, 2]
