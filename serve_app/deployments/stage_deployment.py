"""The body every stage deployment shares: build one stage, run it timed, report health.

A stage deployment is this class plus a `@serve.deployment(name=...)`
decorator and the stage class it wraps; `run` is the only method the
pipeline calls. Serve passes the previous deployment's response in as an
object reference, so a stage's output goes straight to the next replica.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from serve_app.config import AppSettings
from serve_app.metrics import service_metrics
from serve_app.stages import Stage, run_stage

from .replica_logging import use_serve_logging


class StageDeployment:
    stage_class: ClassVar[type[Stage]]

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
