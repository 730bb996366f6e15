"""InferenceRunner on a CUDA GPU: reduced precision, bf16 weights, the real memory guard.

Skipped where torch sees no GPU (CI). The float32 parity case also runs on
the GPU, in test_parity.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serve_app.config import ModelSettings
from tcp_proxy.errors import TooManyFramesError
from serve_app.vggt import VGGT, VGGTConfig
from serve_app.vggt.runner import InferenceRunner

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY_GPU = ModelSettings(preset="tiny", device="cuda", seed=0)
TINY_CPU = ModelSettings(preset="tiny", device="cpu", seed=0)
COMPARED = ("depth", "depth_conf", "world_points", "world_points_conf", "pose_enc")


def _frames(n: int = 3, h: int = 84, w: int = 112, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30))


@pytest.fixture(scope="module")
def cpu_prediction():
    return InferenceRunner(TINY_CPU).predict(_frames())


def test_runs_in_reduced_precision_with_float32_heads():
    runner = InferenceRunner(TINY_GPU)
    assert runner.device.type == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert runner.dtype == expected
    assert all(p.dtype == torch.float32 for p in runner.model.parameters())


def test_gpu_prediction_is_close_to_the_cpu_float32_one(cpu_prediction):
    gpu = InferenceRunner(TINY_GPU).predict(_frames())
    assert set(gpu) == set(cpu_prediction)
    for key in COMPARED:
        assert gpu[key].dtype == np.float32 and gpu[key].shape == cpu_prediction[key].shape
        assert np.isfinite(gpu[key]).all(), key
        err = _relative_error(gpu[key], cpu_prediction[key])
        assert err < 0.05, f"{key}: max|gpu - cpu| / max|cpu| = {err:.3e}"


def test_bf16_weights_keep_the_heads_in_float32(cpu_prediction):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("the GPU has no bf16")
    runner = InferenceRunner(ModelSettings(preset="tiny", device="cuda", seed=0, weights_bf16=True))
    assert {p.dtype for p in runner.model.aggregator.parameters()} == {torch.bfloat16}
    heads = (runner.model.camera_head, runner.model.depth_head, runner.model.point_head)
    assert {p.dtype for head in heads for p in head.parameters()} == {torch.float32}
    out = runner.predict(_frames())
    for key in COMPARED:
        assert out[key].dtype == np.float32 and np.isfinite(out[key]).all(), key
        err = _relative_error(out[key], cpu_prediction[key])
        assert err < 0.05, f"{key}: max|bf16 weights - cpu| / max|cpu| = {err:.3e}"


def test_memory_guard_reads_the_gpu():
    runner = InferenceRunner(TINY_GPU)
    free, total = torch.cuda.mem_get_info()
    assert 0 < free <= total
    runner.check_memory(8, 518, 518)  # a few frames fit any GPU
    with pytest.raises(TooManyFramesError, match="send fewer frames"):
        runner.check_memory(1_000_000, 518, 518)


def test_forward_releases_its_working_memory():
    runner = InferenceRunner(TINY_GPU)
    runner.predict(_frames())
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated()
    runner.predict(_frames())
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= held  # nothing of a request outlives it on the GPU


def test_token_slicing_matches_on_the_gpu():
    whole = InferenceRunner(TINY_GPU)
    sliced_model = VGGT(VGGTConfig.tiny(token_chunk=16))
    sliced_model.load_state_dict(whole.model.state_dict())
    sliced = InferenceRunner.from_model(sliced_model, TINY_GPU)
    a, b = whole.predict(_frames()), sliced.predict(_frames())
    for key in COMPARED:
        err = _relative_error(b[key], a[key])
        assert err < 1e-2, f"{key}: sliced vs whole {err:.3e}"
