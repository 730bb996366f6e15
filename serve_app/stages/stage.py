"""The shape every stage has, and `run_stage`: the one place stages are timed and measured."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, ClassVar, Generic, Protocol, TypeVar

from .messages import Frames

In = TypeVar("In")
Out = TypeVar("Out")

# (work done, work in all; None while unknown), called as a stage goes: the in-process
# pipeline's progress bars. Stages take it as `run(item, progress=...)`; Serve passes none.
Progress = Callable[[int, "int | None"], None]


class Stage(Generic[In, Out]):
    """One step of a reconstruction: built once from the settings, then `run` per request.

    Subclasses set `name` (their key in timings and metrics) and implement `run`,
    optionally with a keyword `progress` (a `Progress` callback, default None).
    A stage is plain Python: the in-process pipeline calls it directly, a Serve
    deployment wraps exactly one.
    """

    name: ClassVar[str]
    # Label under which the in-process pipeline reports building this stage, when building
    # it is slow enough to show (the inference stage reads the checkpoint); None: not shown.
    setup_label: ClassVar[str | None] = None

    def run(self, item: In) -> Out:
        raise NotImplementedError

    def check_health(self) -> None:
        """Raise when this stage cannot work any more and a fresh one (a new replica) would."""


class StageMetrics(Protocol):
    def record_stage(self, stage: str, seconds: float) -> None: ...

    def record_frames(self, source: str, count: int) -> None: ...


def run_stage(
    stage: Stage[In, Out], item: In, metrics: StageMetrics | None = None, progress: Progress | None = None
) -> Out:
    """`stage.run(item)` with its seconds added to the timings the output carries on
    (`stage.run(item, progress=progress)` when a progress callback is given)."""
    start = time.perf_counter()
    out = stage.run(item) if progress is None else stage.run(item, progress=progress)  # type: ignore[call-arg]
    seconds = time.perf_counter() - start
    if metrics is not None:
        metrics.record_stage(stage.name, seconds)
        if isinstance(out, Frames):
            metrics.record_frames(out.source, len(out.frames))
    return dataclasses.replace(out, timings={**item.timings, stage.name: seconds})  # type: ignore[arg-type]
