"""The in-process pipeline: it runs serve_app.stages.STAGES in order, timed, building each stage once."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from stage_doubles import PredictableRunner

from serve_app import pipeline as pipeline_module
from serve_app.config import AppSettings
from serve_app.pipeline import Pipeline
from serve_app.stages import STAGES, ExportStage, InferenceStage, Job, Predictions, Stage, Upload
from serve_app.storage.models import GlbFile
from tcp_proxy.errors import BadImageError


def test_runs_the_declared_stages_in_order(photo_bytes, predictable_runner):
    labels = []

    @contextlib.contextmanager
    def progress(label):
        labels.append(label)
        yield

    settings = AppSettings()
    pipeline = Pipeline(settings, stages=[InferenceStage(settings, predictable_runner)], progress=progress)
    result = pipeline.run(Upload(Job(), images=tuple(photo_bytes[:2])))
    names = [stage.name for stage in STAGES]
    assert names == ["decode", "inference", "export"]
    assert labels == names and list(result.timings) == names
    assert all(seconds >= 0 for seconds in result.timings.values())
    assert predictable_runner.seen == [2]  # the two photos, decoded
    assert result.frame_count == 2 and result.hashed_name is None
    assert result.point_count == 24  # 2 frames x 12 pixels; the 3rd percentile (1.0) is kept
    assert result.glb[:4] == b"glTF"


def test_video_with_the_settings_limits(video_clip, predictable_runner):
    settings = AppSettings.from_dict({"frames": {"fps": 1.0, "max_frames": 2}, "export": {"frame": 1}})
    pipeline = Pipeline(settings, stages=[InferenceStage(settings, predictable_runner)])
    result = pipeline.run(Upload.from_video_file(Job(), video_clip))
    assert predictable_runner.seen == [2] and result.frame_count == 2
    assert result.point_count == 12  # frame 1 only


def test_a_job_with_an_owner_is_stored(photo_bytes, predictable_runner, owned_store):
    settings = AppSettings()
    stages = [InferenceStage(settings, predictable_runner), ExportStage(settings, owned_store)]
    pipeline = Pipeline(settings, stages=stages)
    result = pipeline.run(Upload(Job(7, "photos"), images=tuple(photo_bytes)))
    assert owned_store.read(result.hashed_name) == result.glb
    with owned_store._db.session() as session:
        row = session.query(GlbFile).filter_by(hashed_name=result.hashed_name).one()
        assert (row.user_id, row.original_name) == (7, "photos")


def test_bad_input_fails_before_the_model_is_loaded(monkeypatch, owned_store):
    import serve_app.vggt.runner as runner_module

    def no_model(*_args, **_kwargs):
        raise AssertionError("the model was loaded for a bad upload")

    monkeypatch.setattr(runner_module, "InferenceRunner", no_model)
    settings = AppSettings.from_dict({"model": {"preset": "tiny"}})
    pipeline = Pipeline(settings, stages=[ExportStage(settings, owned_store)])
    with pytest.raises(BadImageError):
        pipeline.run(Upload(Job(7, "x"), images=(b"junk",)))
    assert not (owned_store.root.path / "out").exists()


def test_the_model_is_loaded_once_and_reported_as_load(photo_bytes, monkeypatch):
    import serve_app.vggt.runner as runner_module

    built = []

    class CountingRunner(PredictableRunner):
        def __init__(self, settings):
            super().__init__()
            built.append(settings)

    monkeypatch.setattr(runner_module, "InferenceRunner", CountingRunner)
    settings = AppSettings.from_dict({"model": {"preset": "tiny"}})
    pipeline = Pipeline(settings)
    first = pipeline.run(Upload(Job(), images=(photo_bytes[0],)))
    second = pipeline.run(Upload(Job(), images=(photo_bytes[0],)))
    assert list(first.timings) == ["decode", "load", "inference", "export"]
    assert list(second.timings) == ["decode", "inference", "export"]
    assert built == [settings.model]
    assert pipeline.stage(InferenceStage).runner.seen == [1, 1]


class HalveConfidence(Stage[Predictions, Predictions]):
    """A stage a newcomer might add between inference and export."""

    name = "denoise"

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings

    def run(self, item: Predictions) -> Predictions:
        arrays = dict(item.arrays)
        arrays["world_points_conf"] = np.where(arrays["world_points_conf"] > 1.5, arrays["world_points_conf"], 0.0)
        return Predictions(item.job, arrays, item.frame_count)


def test_a_new_stage_needs_only_its_class_and_a_line_in_the_declaration(photo_bytes, predictable_runner, monkeypatch):
    decode, infer, export = STAGES
    monkeypatch.setattr(pipeline_module, "STAGES", (decode, infer, HalveConfidence, export))
    settings = AppSettings.from_dict({"export": {"conf_percentile": 0}})
    pipeline = Pipeline(settings, stages=[InferenceStage(settings, predictable_runner)])
    result = pipeline.run(Upload(Job(), images=tuple(photo_bytes[:2])))
    assert list(result.timings) == ["decode", "inference", "denoise", "export"]
    assert result.point_count == 12  # frame 0 (confidence 1) dropped by the new stage


def test_a_stage_gets_the_progress_callback_its_context_gives(photo_bytes, predictable_runner, owned_store):
    calls: dict[str, list] = {}

    @contextlib.contextmanager
    def progress(label):
        if label == "inference":  # the predictable runner takes no callback: this stage runs as under Serve
            yield None
        else:
            yield lambda done, total: calls.setdefault(label, []).append((done, total))

    settings = AppSettings()
    stages = [InferenceStage(settings, predictable_runner), ExportStage(settings, owned_store)]
    result = Pipeline(settings, stages=stages, progress=progress).run(Upload(Job(7, "desk"), images=tuple(photo_bytes)))
    assert result.hashed_name is not None and predictable_runner.seen == [3]
    assert calls == {"decode": [(1, 3), (2, 3), (3, 3)], "export": [(0, 2), (1, 2), (2, 2)]}  # GLB built, stored
