"""The reconstruction stages in order, in one process: decode, inference, export, store.

`Pipeline(settings)` is what the CLI and the benchmarks run; the Ray Serve
app runs the same stage methods as separate deployments. Each run returns a
`Reconstruction` with the GLB bytes and the seconds spent per stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ContextManager, Sequence

import numpy as np

from serve_app.config import AppSettings, ExportSettings
from serve_app.export import GlbExport, export_glb
from serve_app.frames import decode_images, sample_video

STAGES = ("decode", "load", "inference", "export", "store")  # "load" only on the first run

# called with a stage name around each stage (the CLI shows a progress bar)
StageProgress = Callable[[str], ContextManager[Any]]


@dataclass
class Reconstruction:
    """One run: the GLB, what went into it, and seconds per stage (in run order)."""

    glb: bytes
    frame_count: int
    point_count: int
    timings: dict[str, float] = field(default_factory=dict)
    stored: Any = None  # a StoredGlb once saved

    @property
    def glb_size(self) -> int:
        return len(self.glb)

    @property
    def total_seconds(self) -> float:
        return sum(self.timings.values())


def export_options(export: ExportSettings) -> dict[str, Any]:
    """Keyword arguments of `export_glb` for the configured export settings."""
    return dataclasses.asdict(export)


class Pipeline:
    """Frames -> predictions -> GLB -> stored file, with per-stage timings.

    `runner` (an InferenceRunner) and `store` (a GlbStore) are built from the
    settings on first use when not given. `export_overrides` adds export
    options the settings do not hold (e.g. `frame`, `downsample`).
    """

    def __init__(
        self,
        settings: AppSettings,
        runner=None,
        store=None,
        *,
        export_overrides: dict[str, Any] | None = None,
        progress: StageProgress | None = None,
    ) -> None:
        self.settings = settings
        self._runner = runner
        self._store = store
        self.export_options = {**export_options(settings.export), **(export_overrides or {})}
        self._progress = progress or (lambda _stage: contextlib.nullcontext())

    @property
    def runner(self):
        if self._runner is None:
            from serve_app.vggt.runner import InferenceRunner

            self._runner = InferenceRunner(self.settings.model)
        return self._runner

    @property
    def store(self):
        if self._store is None:
            from serve_app.storage import Database, GlbStore

            db = Database(self.settings.storage.database_url)
            db.upgrade()
            self._store = GlbStore(db, self.settings.storage.storage_root)
        return self._store

    def load_model(self) -> None:
        """Build the model now rather than in the first inference."""
        self.runner  # noqa: B018

    # the stages, one call each
    def decode_images(self, blobs: Sequence[bytes]) -> list[np.ndarray]:
        frames = self.settings.frames
        return decode_images(blobs, max_images=frames.max_images, max_pixels=frames.max_image_pixels)

    def decode_video(self, path: str) -> list[np.ndarray]:
        frames = self.settings.frames
        return sample_video(
            path, fps=frames.fps, max_frames=frames.max_frames, sharpest=frames.sharpest, max_side=frames.max_side or None
        )

    def infer(self, frames: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.predict(frames)

    def export(self, predictions: dict[str, np.ndarray]) -> GlbExport:
        return export_glb(predictions, **self.export_options)

    def save(self, glb: bytes, user_id: int, original_name: str):
        return self.store.save(glb, user_id, original_name)

    # whole runs
    def glb_from_images(self, blobs: Sequence[bytes]) -> Reconstruction:
        """Photos to GLB bytes, not stored (the CLI's --out)."""
        return self._run(lambda: self.decode_images(blobs))

    def glb_from_video(self, path: str) -> Reconstruction:
        """A video file to GLB bytes, not stored."""
        return self._run(lambda: self.decode_video(path))

    def reconstruct_images(self, blobs: Sequence[bytes], *, user_id: int, original_name: str) -> Reconstruction:
        """Photos to a stored GLB, exactly as an IMAGE request."""
        return self._run(lambda: self.decode_images(blobs), user_id=user_id, original_name=original_name)

    def reconstruct_video(self, path: str, *, user_id: int, original_name: str) -> Reconstruction:
        """A video file to a stored GLB, exactly as a VIDEO request."""
        return self._run(lambda: self.decode_video(path), user_id=user_id, original_name=original_name)

    def _run(
        self,
        decode: Callable[[], list[np.ndarray]],
        *,
        user_id: int | None = None,
        original_name: str | None = None,
    ) -> Reconstruction:
        timings: dict[str, float] = {}
        with self._stage("decode", timings):
            frames = decode()
        if self._runner is None:  # bad input fails above, before the weights are read
            with self._stage("load", timings):
                self.load_model()
        with self._stage("inference", timings):
            predictions = self.infer(frames)
        with self._stage("export", timings):
            exported = self.export(predictions)
        result = Reconstruction(exported.glb, len(frames), exported.point_count, timings)
        if user_id is not None:
            with self._stage("store", timings):
                result.stored = self.save(exported.glb, user_id, original_name or "")
        return result

    @contextlib.contextmanager
    def _stage(self, name: str, timings: dict[str, float]):
        start = time.perf_counter()
        with self._progress(name):
            yield
        timings[name] = time.perf_counter() - start
