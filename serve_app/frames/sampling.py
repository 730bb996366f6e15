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
* when more than `max_frames` samples fit in the video, only `max_frames`
  sample times, evenly spaced over all of them (first and last included),
  are used, so frames that would be dropped are never converted.

Times are compared with a tolerance of `EPS` seconds so that a frame stamped
exactly on a sample time counts as being at it despite rounding.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
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


def sample_times(
    t0: float, fps: float, span: float | None, max_frames: int
) -> Iterator[float]:
    """Sample times to look for, in order.

    `span` is the time from the first to the last frame, if known.
    Unbounded when it is unknown or the samples fit under `max_frames` (the
    caller caps the result again, so an understated span loses nothing);
    otherwise the evenly spaced subset.
    """
    step = 1.0 / fps
    if span is not None and span >= 0:
        total = sample_count(span, fps)
        if total > max_frames:
            return iter([t0 + k * step for k in even_indices(total, max_frames)])
    return (t0 + k * step for k in itertools.count())


class FrameSelector:
    """Picks frames offered in presentation order according to the sample times.

    `window` is 0 for plain mode (first frame at or after each sample time)
    or the window length for sharpest mode, where `score(item)` rates each
    frame of an open window and the best is kept when the window closes.
    Kept items go through `keep` at once, so the caller can convert them
    while the rest are dropped unconverted.
    """

    def __init__(
        self,
        starts: Iterable[float],
        window: float,
        keep: Callable[[Any], T],
        score: Callable[[Any], float] | None = None,
    ):
        if window > 0 and score is None:
            raise ValueError("a score is needed to choose within a window")
        self._starts = iter(starts)
        self._window = window
        self._keep = keep
        self._score = score
        self._start: float | None = next(self._starts, None)
        self._best: tuple[float, Any] | None = None
        self.kept: list[T] = []

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
                self.kept.append(self._keep(item))
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
        self.kept.append(self._keep(self._best[1]))
        self._best = None
        self._start = next(self._starts, None)

    def _advance_past(self, t: float) -> None:
        while self._start is not None and self._start <= t + EPS:
            self._start = next(self._starts, None)
