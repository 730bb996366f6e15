"""Which video frames to keep: sample times, windows and the even-spacing cap.

Everything here works on presentation times in seconds and knows nothing
about decoding, so it is tested without a video.

Semantics, for a video whose first frame is at `t0`:

* sample times are `T_k = t0 + k / fps` for k = 0, 1, 2, ...;
* plain mode keeps, for each T_k, the first frame at or after T_k; a frame is
  kept once at most, so sample times a kept frame already covers are dropped
  (a video slower than `fps` gives one frame per frame, never duplicates);
* sharpest mode keeps, for each window `[T_k, T_k + 1/fps)`, the frame of
  highest score in it; windows holding no frame give nothing;
* when more than `max_frames` samples fit in the video's declared length,
  only `max_frames` sample times, evenly spaced over all of them (first and
  last included), are used, so frames that would be dropped are never
  converted;
* otherwise (no declared length, or one that may be understated) the sample
  times are a grid (`SampleGrid`) and the selector never holds more than
  `limit` + 1 frames: when it would, the grid's stride doubles and the kept
  frames off the coarser grid are dropped, so what is kept stays evenly
  spaced over the video seen so far, whatever its real length.

Times are compared with a tolerance of `EPS` seconds so that a frame stamped
exactly on a sample time counts as being at it despite rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

EPS = 1e-6  # seconds; timestamps are rationals, sample times are floats

T = TypeVar("T")


def even_indices(count: int, limit: int) -> list[int]:
    """`limit` indices spread evenly over range(count), ends included."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if count <= limit:
        return list(range(count))
    if limit == 1:
        return [0]
    step = (count - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def even_spacing(items: Sequence[T], limit: int) -> list[T]:
    """At most `limit` items of `items`, evenly spaced, first and last kept."""
    return [items[i] for i in even_indices(len(items), limit)]


def sample_count(span: float, fps: float) -> int:
    """How many sample times fall in [t0, t0 + span] (span: first to last frame)."""
    return max(0, math.floor(span * fps + EPS)) + 1


class SampleGrid:
    """Sample times `t0 + k * step` for k = 0, s, 2s, ... with stride s (1 at first), without end.

    `coarsen` doubles the stride; the times still to come move to the coarser grid.
    """

    def __init__(self, t0: float, step: float) -> None:
        self.t0 = t0
        self.step = step
        self.stride = 1
        self._next_k = 0

    def __iter__(self) -> SampleGrid:
        return self

    def __next__(self) -> float:
        k = self._next_k
        self._next_k += self.stride
        return self.t0 + k * self.step

    def coarsen(self) -> None:
        self.stride *= 2
        self._next_k = -(-self._next_k // self.stride) * self.stride

    def covers(self, first: float, last: float) -> bool:
        """Whether a sample time of the grid at its current stride lies in [first, last]
        (`first` a time this grid gave)."""
        k_first = round((first - self.t0) / self.step)
        k_last = max(k_first, math.floor((last - self.t0 + EPS) / self.step))
        return -(-k_first // self.stride) * self.stride <= k_last


def sample_times(
    t0: float, fps: float, span: float | None, max_frames: int
) -> Iterable[float]:
    """Sample times to look for, in order.

    `span` is the time from the first to the last frame, if known.
    A `SampleGrid` without end when it is unknown or the samples fit under
    `max_frames` (a selector with a `limit` thins it, so an understated span
    neither loses frames nor piles them up); otherwise the evenly spaced subset.
    """
    step = 1.0 / fps
    if span is not None and span >= 0:
        total = sample_count(span, fps)
        if total > max_frames:
            return iter([t0 + k * step for k in even_indices(total, max_frames)])
    return SampleGrid(t0, step)


class FrameSelector:
    """Picks frames offered in presentation order according to the sample times.

    `window` is 0 for plain mode (first frame at or after each sample time)
    or the window length for sharpest mode, where `score(item)` rates each
    frame of an open window and the best is kept when the window closes.
    Kept items go through `keep` at once, so the caller can convert them
    while the rest are dropped unconverted. With a `limit` and a `SampleGrid`
    as `starts`, at most `limit` + 1 items are ever held: the grid is
    coarsened and the items off it dropped whenever more would be.
    """

    def __init__(
        self,
        starts: Iterable[float],
        window: float,
        keep: Callable[[Any], T],
        score: Callable[[Any], float] | None = None,
        limit: int | None = None,
    ):
        if window > 0 and score is None:
            raise ValueError("a score is needed to choose within a window")
        if limit is not None and limit < 1:
            raise ValueError("limit must be at least 1")
        self._starts = iter(starts)
        self._window = window
        self._keep = keep
        self._score = score
        self._limit = limit if isinstance(starts, SampleGrid) else None  # fixed times are bounded already
        self._start: float | None = next(self._starts, None)
        self._best: tuple[float, Any] | None = None
        self._kept: list[tuple[float, float, T]] = []  # (first and last sample time it answers, the item)
        self.taken = 0  # items kept so far, those thinned out since included

    @property
    def kept(self) -> list[T]:
        """The items kept so far, in order."""
        return [item for _, _, item in self._kept]

    @property
    def wanted_from(self) -> float | None:
        """Earliest time still of interest; None once every sample is taken."""
        return self._start

    @property
    def window_open(self) -> bool:
        """True while a sharpest-mode window has seen a frame but not closed."""
        return self._best is not None

    def offer(self, t: float, item: Any) -> None:
        """Consider one decoded frame at time `t` seconds."""
        while self._start is not None:
            if self._best is not None:
                if t < self._start + self._window - EPS:
                    self._rate(item)
                    return
                self._close_window()
                continue
            if t < self._start - EPS:
                return
            if self._window <= 0:
                self._hold(self._keep(item), t)
                self._advance_past(t)
                return
            if t >= self._start + self._window - EPS:
                self._start = next(self._starts, None)  # an empty window
                continue
            self._best = (self._score(item), item)  # type: ignore[misc]
            return

    def finish(self) -> None:
        """End of the video: keep the best frame of a still open window."""
        if self._best is not None:
            self._close_window()

    def _rate(self, item: Any) -> None:
        value = self._score(item)  # type: ignore[misc]
        if self._best is None or value > self._best[0]:
            self._best = (value, item)

    def _close_window(self) -> None:
        assert self._best is not None
        self._hold(self._keep(self._best[1]), self._start)
        self._best = None
        self._start = next(self._starts, None)

    def _hold(self, kept: T, last: float | None) -> None:
        """Keep the item that answers the sample times from the current one to `last`; past the limit,
        coarsen the grid and drop the items that answer none of its times (the coarser grid's own picks)."""
        assert self._start is not None and last is not None
        self._kept.append((self._start, last, kept))
        self.taken += 1
        if self._limit is None:
            return
        grid = self._starts
        assert isinstance(grid, SampleGrid)
        while len(self._kept) > self._limit:
            grid.coarsen()
            self._kept = [entry for entry in self._kept if grid.covers(entry[0], entry[1])]

    def _advance_past(self, t: float) -> None:
        while self._start is not None and self._start <= t + EPS:
            self._start = next(self._starts, None)
