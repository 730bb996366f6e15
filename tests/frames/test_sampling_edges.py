"""Frame sampling at its edges: frames stamped on the tolerance, ties, finite sample times running out, the
even-spacing cap exactly at `max_frames`, and thinning when one slow frame answers several sample times."""

from __future__ import annotations

import pytest

from serve_app.frames.sampling import EPS, FrameSelector, SampleGrid, even_indices, sample_times


def sharpest(starts, frames, window=1.0):
    """frames: (time, name, score); the names kept."""
    scores = {name: score for _, name, score in frames}
    selector = FrameSelector(starts, window, keep=lambda name: name, score=scores.__getitem__)
    for t, name, _ in frames:
        selector.offer(t, name)
    selector.finish()
    return selector.kept


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="^limit must be at least 1$"):
        even_indices(5, 0)
    with pytest.raises(ValueError, match="^limit must be at least 1$"):
        FrameSelector([0.0], 0, keep=lambda x: x, limit=0)
    with pytest.raises(ValueError, match="^a score is needed to choose within a window$"):
        FrameSelector([0.0], 0.5, keep=lambda x: x)


def test_samples_of_a_short_video_over_max_frames_are_spread_evenly():
    assert list(sample_times(0.0, 30.0, 0.5, 4)) == pytest.approx([0.0, 5 / 30, 10 / 30, 15 / 30])


def test_exactly_max_frames_samples_stay_a_grid():
    assert isinstance(sample_times(0.0, 10.0, 0.9, 10), SampleGrid)
    assert not isinstance(sample_times(0.0, 10.0, 1.0, 10), SampleGrid)


def test_no_sample_times_keep_nothing():
    selector = FrameSelector([], 0, keep=lambda x: x)
    selector.offer(0.0, "a")
    assert (selector.kept, selector.wanted_from, selector.taken) == ([], None, 0)


def test_a_frame_stamped_on_the_tolerance_before_a_sample_time_answers_it():
    selector = FrameSelector([1.0], 0, keep=lambda x: x)
    selector.offer(1.0 - EPS, "a")
    assert (selector.kept, selector.taken) == (["a"], 1)


def test_a_frame_on_the_tolerance_before_a_windows_end_belongs_to_the_next_window():
    assert sharpest([0.0, 1.0], [(0.0, "a", 1), (1.0 - EPS, "b", 5)]) == ["a", "b"]


def test_an_empty_window_is_passed_over_from_the_tolerance_before_its_end():
    assert sharpest([0.0, 1.0], [(1.0 - EPS, "b", 1), (1.5, "c", 5)]) == ["c"]


def test_the_first_of_equally_sharp_frames_is_kept():
    assert sharpest([0.0], [(0.0, "a", 1), (0.5, "b", 1)]) == ["a"]


def test_finite_sample_times_may_run_out_in_any_window():
    assert sharpest([0.0], [(0.0, "a", 1)]) == ["a"]  # closed by finish
    assert sharpest([0.0], [(2.0, "late", 1)]) == []  # past the only window
    assert sharpest([0.0, 1.0], [(0.5, "a", 1), (1.2, "b", 1), (3.0, "c", 1)]) == ["a", "b"]


def plain_on_a_grid(times, step, limit, keep=lambda t: t):
    selector = FrameSelector(SampleGrid(0.0, step), 0, keep, limit=limit)
    for t in times:
        selector.offer(t, t)
    selector.finish()
    return selector.kept, selector.taken


def test_thinning_keeps_the_ends_and_counts_every_frame_taken():
    assert plain_on_a_grid([i * 0.1 for i in range(11)], 0.1, 2, keep=str) == (["0.0", "0.8"], 5)


def test_thinning_a_slower_video_keeps_frames_that_answer_several_sample_times():
    frames = [i * 0.25 for i in range(9)]  # 4 fps against samples every 0.1 s
    assert plain_on_a_grid(frames, 0.1, 2) == ([0.0, 1.75], 5)
    assert plain_on_a_grid(frames, 0.1, 3) == ([0.0, 1.0, 1.75], 7)


def test_a_kept_frame_answers_every_sample_time_up_to_its_own_within_the_tolerance():
    selector = FrameSelector([0.0, 1.0], 0, keep=lambda x: x)
    selector.offer(1.0 - EPS, "a")  # answers 0.0 and, within the tolerance, 1.0
    selector.offer(1.5, "b")
    assert selector.kept == ["a"]
