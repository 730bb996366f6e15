"""The body every stage deployment shares: build one stage, run it timed, report health.

A stage deployment class is a plain subclass of `StageDeployment` naming the
stage class it wraps (`stage_class`) and its Serve options
(`serve_options`); Ray is imported nowhere here. `serve.deployment(...)`
wraps each class in `serve_deployments.py`, under the class's name. `run`
is the only method the pipeline calls. Serve passes the previous
deployment's response in as an object reference, so a stage's output goes
straight to the next replica.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Iterable, Sequence

from serve_app.config import AppSettings
from serve_app.metrics import service_metrics
from serve_app.stages import Stage, run_stage

from .replica_logging import use_serve_logging


class StageDeployment:
    stage_class: ClassVar[type[Stage]]
    # Keyword arguments of `serve.deployment` (each states its CPU share: see the package docstring).
    serve_options: ClassVar[dict[str, Any]]

    def __init__(self, settings: AppSettings) -> None:
        use_serve_logging()
        self.stage = self.stage_class(settings)
        self.metrics = service_metrics()

    @classmethod
    def placement(cls, settings: AppSettings) -> tuple[AppSettings, dict[str, Any]]:
        """The settings this deployment is bound with, and its `.options(...)` overrides."""
        return settings, {}

    def run(self, item: Any) -> Any:
        return run_stage(self.stage, item, self.metrics)

    def check_health(self) -> None:
        # Serve calls this every health_check_period_s (10 s by default).
        release_free_memory()
        self.stage.check_health()


def classes_by_stage(
    classes: Iterable[type[StageDeployment]], stages: Sequence[type[Stage]]
) -> dict[type[Stage], type[StageDeployment]]:
    """Each stage's deployment class, in the order of `stages`, read from the classes' `stage_class`.

    Raises TypeError unless every stage has exactly one class and every class wraps one of `stages`.
    """
    found: dict[type[Stage], list[type[StageDeployment]]] = {stage: [] for stage in stages}
    strays = []
    for cls in classes:
        if cls.stage_class in found:
            found[cls.stage_class].append(cls)
        else:
            strays.append(f"{cls.__name__} wraps {cls.stage_class.__name__}, which is not a declared stage")
    problems = strays + [
        f"{stage.__name__} has {len(wrapping)} deployment classes ({', '.join(c.__name__ for c in wrapping) or 'none'})"
        for stage, wrapping in found.items()
        if len(wrapping) != 1
    ]
    if problems:
        raise TypeError("each stage needs exactly one deployment class: " + "; ".join(problems))
    return {stage: wrapping[0] for stage, wrapping in found.items()}


def release_free_memory() -> None:
    """Give freed heap pages back to the OS (glibc keeps them after a big request otherwise).

    Called from the replicas' periodic `check_health`, so an idle replica shrinks
    back within `health_check_period_s` after a reconstruction; a no-op off glibc.
    """
    trim = _glibc_malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _glibc_malloc_trim() -> Any:
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
