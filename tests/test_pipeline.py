"""The in-process pipeline: stage order, timings, export options, storing like the service."""

from __future__ import annotations

import contextlib
import inspect

import numpy as np
import pytest

from serve_app import pipeline as pipeline_module
from serve_app.config import AppSettings, ExportSettings
from serve_app.export import export_glb
from serve_app.pipeline import Pipeline, export_options
from serve_app.storage import Database, GlbStore
from serve_app.storage.models import GlbFile, User


def small_predictions(frames: int) -> dict[str, np.ndarray]:
    """Frame s, pixel (i, j) at (s, i, j) with confidence 1 + s."""
    s, i, j = np.meshgrid(np.arange(frames), np.arange(3), np.arange(4), indexing="ij")
    return {
        "world_points": np.stack([s, i, j], axis=-1).astype(np.float32),
        "world_points_conf": (1.0 + s).astype(np.float32),
        "images": np.full((frames, 3, 3, 4), 0.5, np.float32),
        "extrinsic": np.tile(np.eye(4, dtype=np.float32)[:3], (frames, 1, 1)),
    }


class FakeRunner:
    def __init__(self):
        self.seen = []

    def predict(self, frames):
        self.seen.append(len(frames))
        return small_predictions(len(frames))


@pytest.fixture
def fake_frames(monkeypatch):
    """Decoding replaced by counting: one frame per blob, three per video."""
    calls = []

    def decode_images(blobs, **limits):
        calls.append(("images", len(blobs), limits))
        return [np.zeros((4, 4, 3), np.uint8)] * len(blobs)

    def sample_video(path, **sampling):
        calls.append(("video", path, sampling))
        return [np.zeros((4, 4, 3), np.uint8)] * 3

    monkeypatch.setattr(pipeline_module, "decode_images", decode_images)
    monkeypatch.setattr(pipeline_module, "sample_video", sample_video)
    return calls


@pytest.fixture
def store(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'app.db'}")
    db.upgrade()
    with db.session() as session:
        session.add(User(id=7, username="alice", password_hash="x"))
    yield GlbStore(db, tmp_path / "storage")
    db.dispose()


def test_settings_map_onto_export_keywords():
    accepted = set(inspect.signature(export_glb).parameters) - {"predictions"}
    assert set(export_options(ExportSettings())) <= accepted


def test_glb_from_images_runs_the_stages_in_order(fake_frames):
    stages = []

    @contextlib.contextmanager
    def progress(stage):
        stages.append(stage)
        yield

    runner = FakeRunner()
    pipeline = Pipeline(AppSettings(), runner=runner, progress=progress)
    result = pipeline.glb_from_images([b"a", b"b"])
    assert stages == ["decode", "inference", "export"]
    assert list(result.timings) == ["decode", "inference", "export"]
    assert all(seconds >= 0 for seconds in result.timings.values())
    assert runner.seen == [2]
    assert fake_frames[0] == ("images", 2, {"max_images": 20, "max_pixels": 50_000_000})
    assert result.frame_count == 2 and result.stored is None
    # 2 frames x 12 pixels; the 3rd percentile is 1.0 and points at it are kept
    assert result.point_count == 24
    assert result.glb[:4] == b"glTF" and result.glb_size == len(result.glb)


def test_settings_and_overrides_reach_the_export(fake_frames):
    settings = AppSettings.from_dict({"export": {"conf_percentile": 0.0, "max_points": 5}, "frames": {"max_side": 640}})
    pipeline = Pipeline(settings, runner=FakeRunner(), export_overrides={"frame": 1})
    result = pipeline.glb_from_video("clip.mp4")
    frames = settings.frames
    assert fake_frames[0] == (
        "video",
        "clip.mp4",
        {"fps": frames.fps, "max_frames": frames.max_frames, "sharpest": frames.sharpest, "max_side": 640},
    )
    assert result.frame_count == 3
    assert result.point_count == 5  # frame 1 only (12 points), capped at 5


def test_reconstruct_stores_file_and_row(fake_frames, store):
    pipeline = Pipeline(AppSettings(), runner=FakeRunner(), store=store)
    result = pipeline.reconstruct_video("clip.mp4", user_id=7, original_name="clip.mp4")
    assert list(result.timings) == ["decode", "inference", "export", "store"]
    stored = result.stored
    assert len(stored.hashed_name) == 64
    assert stored.file_path.read_bytes() == result.glb
    assert stored.file_size == result.glb_size
    assert store.read(stored.hashed_name) == result.glb
    with store._db.session() as session:
        row = session.query(GlbFile).filter_by(hashed_name=stored.hashed_name).one()
        assert (row.user_id, row.original_name, row.file_size) == (7, "clip.mp4", result.glb_size)


def test_reconstruct_images_stores_too(fake_frames, store):
    pipeline = Pipeline(AppSettings(), runner=FakeRunner(), store=store)
    result = pipeline.reconstruct_images([b"a"] * 4, user_id=7, original_name="photos")
    assert result.frame_count == 4
    assert store.read(result.stored.hashed_name) == result.glb


def test_errors_propagate_and_nothing_is_stored(monkeypatch, store):
    from serve_app.errors import NoFramesError

    def no_frames(path, **sampling):
        raise NoFramesError("no readable frame")

    monkeypatch.setattr(pipeline_module, "sample_video", no_frames)
    pipeline = Pipeline(AppSettings(), runner=FakeRunner(), store=store)
    with pytest.raises(NoFramesError):
        pipeline.reconstruct_video("bad.mp4", user_id=7, original_name="bad.mp4")
    assert not (store.root / "out").exists() or not any((store.root / "out").rglob("*.glb"))


def test_model_is_loaded_once_as_its_own_stage(fake_frames, monkeypatch):
    import serve_app.vggt.runner as runner_module

    built = []

    class CountingRunner(FakeRunner):
        def __init__(self, settings):
            super().__init__()
            built.append(settings)

    monkeypatch.setattr(runner_module, "InferenceRunner", CountingRunner)
    settings = AppSettings.from_dict({"model": {"preset": "tiny"}})
    pipeline = Pipeline(settings)
    first = pipeline.glb_from_images([b"a"])
    second = pipeline.glb_from_images([b"a"])
    assert list(first.timings) == ["decode", "load", "inference", "export"]
    assert list(second.timings) == ["decode", "inference", "export"]
    assert built == [settings.model]
