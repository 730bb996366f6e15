"""InferenceStage: the model's outputs passed on, degraded without weights, broken after a CUDA error."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.config import AppSettings
from serve_app.export import prediction_keys
from serve_app.stages import Frames, InferenceStage, Job
from tcp_proxy.errors import ModelUnavailableError


def _frames(n: int = 2) -> Frames:
    rng = np.random.default_rng(0)
    return Frames(Job(3, "x"), [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(n)], "images")


TINY = {"model": {"preset": "tiny", "device": "cpu"}}


@pytest.mark.parametrize("source", ["pointmap", "depth"])
def test_passes_on_only_what_the_export_reads(source):
    settings = {**TINY, "export": {"source": source}, "storage": {"predictions_ttl_s": 0}}
    stage = InferenceStage(AppSettings.from_dict(settings))
    out = stage.run(_frames())
    assert set(out.arrays) == set(prediction_keys(source))
    assert out.frame_count == 2 and out.job == Job(3, "x")
    points = out.arrays["world_points" if source == "pointmap" else "world_points_from_depth"]
    assert points.shape[0] == 2 and points.shape[-1] == 3 and points.dtype == np.float32
    assert stage.ready and stage.status()["loaded"] and stage.status()["device"] == "cpu"


@pytest.mark.parametrize("source", ["pointmap", "depth"])
def test_with_stored_predictions_it_also_passes_on_what_they_keep(source):
    from serve_app.storage.predictions import STORED_KEYS

    stage = InferenceStage(AppSettings.from_dict({**TINY, "export": {"source": source}}))
    assert set(stage.run(_frames()).arrays) == set(prediction_keys(source)) | set(STORED_KEYS)


def test_without_checkpoint_it_starts_degraded_and_refuses(tmp_path):
    settings = AppSettings.from_dict({"model": {"checkpoint": str(tmp_path / "none.pt"), "device": "cpu"}})
    stage = InferenceStage(settings)
    assert not stage.ready
    stage.check_health()  # healthy: a new replica would not bring the file either
    status = stage.status()
    assert status["loaded"] is False and "not found" in status["error"] and "fetch_weights.py" in status["error"]
    with pytest.raises(ModelUnavailableError) as caught:
        stage.run(_frames())
    assert caught.value.code == "ERROR_MODEL_NOT_LOADED"


def test_a_cuda_failure_marks_it_broken(predictable_runner):
    stage = InferenceStage(AppSettings(), runner=predictable_runner)
    assert stage.run(_frames(1)).frame_count == 1
    stage.check_health()

    def broken(_frames):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    predictable_runner.predict = broken
    with pytest.raises(RuntimeError):
        stage.run(_frames())
    assert not stage.ready and "illegal memory access" in stage.status()["broken"]
    with pytest.raises(RuntimeError, match="unusable"):
        stage.check_health()  # Serve replaces the replica


def test_other_errors_do_not_break_it(predictable_runner):
    stage = InferenceStage(AppSettings(), runner=predictable_runner)

    def failing(_frames):
        raise RuntimeError("shape mismatch")

    predictable_runner.predict = failing
    with pytest.raises(RuntimeError, match="shape mismatch"):
        stage.run(_frames())
    stage.check_health()
    assert stage.ready


def test_torch_threads_setting(predictable_runner):
    import torch

    before = torch.get_num_threads()
    try:
        stage = InferenceStage(AppSettings.from_dict({"model": {"torch_threads": 1}}), runner=predictable_runner)
        stage.run(_frames(1))
        assert torch.get_num_threads() == 1 and stage.status()["torch_threads"] == 1
        every_core = InferenceStage(AppSettings.from_dict({"model": {"torch_threads": -1}}), runner=predictable_runner)
        assert every_core.torch_threads >= 1
    finally:
        torch.set_num_threads(before)
