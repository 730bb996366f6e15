"""The stages of `serve_app.stages.STAGES`, run one after the other in this process.

`Pipeline(settings).run(upload)` is what the export CLI, the tests and the
benchmarks run; the Ray Serve app runs the same stages as deployments. The
stages are built on first use, so bad input fails in the decode stage before
the inference stage reads the checkpoint; building a stage with a
`setup_label` (the inference stage: "load") is timed under that label.
`progress` wraps each stage (and each setup) by name; the value its
context gives, when not None, is the stage's progress callback
(`serve_app.stages.Progress`: work done, work in all).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any, Callable, ContextManager, Iterable, TypeVar

from serve_app.config import AppSettings
from serve_app.stages import STAGES, Reconstruction, Stage, Upload, run_stage

# called with a stage name around each stage (the CLI shows a progress bar); the context's
# value, when not None, is passed to the stage as its progress callback
StageProgress = Callable[[str], ContextManager[Any]]

S = TypeVar("S", bound=Stage)


class Pipeline:
    """Upload -> frames -> predictions -> (stored) GLB, with seconds per stage."""

    def __init__(
        self,
        settings: AppSettings,
        *,
        stages: Iterable[Stage] = (),
        progress: StageProgress | None = None,
    ) -> None:
        """stages: already built stages that replace those of the same class (tests, benchmarks)."""
        self.settings = settings
        self._built: dict[type, Stage] = {type(stage): stage for stage in stages}
        self._progress = progress or (lambda _stage: contextlib.nullcontext())

    def stage(self, cls: type[S]) -> S:
        """The pipeline's instance of a stage class, built now if it was not yet."""
        if cls not in self._built:
            self._built[cls] = cls(self.settings)
        return self._built[cls]  # type: ignore[return-value]

    def run(self, upload: Upload) -> Reconstruction:
        item: Any = upload
        for cls in STAGES:
            if cls not in self._built and cls.setup_label is not None:
                start = time.perf_counter()
                with self._progress(cls.setup_label):
                    self.stage(cls)
                item = _with_timing(item, cls.setup_label, time.perf_counter() - start)
            stage = self.stage(cls)
            with self._progress(stage.name) as report:
                item = run_stage(stage, item, progress=report if callable(report) else None)
        return item


def _with_timing(item: Any, label: str, seconds: float) -> Any:
    return dataclasses.replace(item, timings={**item.timings, label: seconds})
