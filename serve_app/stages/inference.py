"""Inference: frames to VGGT predictions (`serve_app.vggt.runner.InferenceRunner`).

The model loads once, when the stage is built. A missing or corrupt
checkpoint does not fail the build: the stage starts degraded, `status()`
says why, and every `run` answers `ModelUnavailableError`
(`ERROR_MODEL_NOT_LOADED`) at once, so logins and downloads keep working
while the operator fetches the weights. A CUDA error that leaves the device
unusable marks the stage broken: `check_health` then fails, so Serve
replaces the replica.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from serve_app.config import AppSettings
from serve_app.export import prediction_keys
from serve_app.storage import predictions as stored_predictions
from tcp_proxy.errors import ModelUnavailableError, ServiceError

from .messages import Frames, Predictions
from .stage import Progress, Stage

log = logging.getLogger(__name__)

CUDA_BREAKAGE = ("CUDA error", "device-side assert", "illegal memory access", "CUBLAS_STATUS", "cuDNN error")


class InferenceStage(Stage[Frames, Predictions]):
    name = "inference"
    setup_label = "load"

    def __init__(self, settings: AppSettings, runner: Any = None) -> None:
        """runner: an already built InferenceRunner (tests, benchmarks); else built from settings.model."""
        self.settings = settings.model
        self.keep_keys = prediction_keys(settings.export.source)  # the rest would travel for nothing
        if settings.storage.predictions_ttl_s > 0:  # and those stored for exports with other options
            self.keep_keys = tuple(dict.fromkeys((*self.keep_keys, *stored_predictions.STORED_KEYS)))
        threads = settings.model.torch_threads
        self.torch_threads = _cpu_count() if threads < 0 else threads
        self.error: ModelUnavailableError | None = None
        self.broken: str | None = None
        self.runner = runner
        if runner is None:
            try:
                from serve_app.vggt.runner import InferenceRunner

                self.runner = InferenceRunner(settings.model)
            except ModelUnavailableError as exc:
                self.error = exc

    @property
    def ready(self) -> bool:
        return self.runner is not None and self.broken is None

    def run(self, item: Frames, progress: Progress | None = None) -> Predictions:
        """progress: called with (model steps done, model steps) as the forward pass goes."""
        if self.runner is None:
            assert self.error is not None
            raise ModelUnavailableError(self.error.message)
        self._apply_torch_threads()
        try:
            if progress is None:
                arrays = self.runner.predict(item.frames)
            else:
                arrays = self.runner.predict(item.frames, progress=progress)
        except ServiceError:
            raise
        except RuntimeError as exc:
            if any(marker in str(exc) for marker in CUDA_BREAKAGE):
                self.broken = str(exc)
                log.error("VGGT inference is broken, a new replica is needed: %s", exc)
            raise
        arrays = {key: arrays[key] for key in self.keep_keys}
        return Predictions(item.job, arrays, len(item.frames))

    def status(self) -> dict[str, Any]:
        return {
            "loaded": self.runner is not None,
            "preset": self.settings.preset,
            "device": str(self.runner.device) if self.runner is not None else None,
            "torch_threads": self.torch_threads or None,
            "error": self.error.message if self.error is not None else None,
            "broken": self.broken,
        }

    def check_health(self) -> None:
        if self.broken is not None:
            raise RuntimeError(f"VGGT inference unusable: {self.broken}")

    def _apply_torch_threads(self) -> None:
        # Per thread: with OpenMP the count is a per-thread setting, and a Serve replica runs
        # each call on one of its worker threads, not the thread that built the stage.
        if self.torch_threads:
            import torch

            if torch.get_num_threads() != self.torch_threads:
                torch.set_num_threads(self.torch_threads)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
