"""InferenceRunner on CPU with the tiny preset: outputs, cameras, errors, memory guard."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from serve_app.config import ModelSettings
from tcp_proxy.errors import ModelUnavailableError, NoFramesError, TooManyFramesError
from serve_app.vggt import VGGTConfig
from serve_app.vggt.geometry import pose_encoding_to_extri_intri, unproject_depth_map_to_point_map
from serve_app.vggt.preprocess import preprocess_images
from serve_app.vggt.runner import InferenceRunner, estimate_memory, load_trained_model

TINY = ModelSettings(preset="tiny", device="cpu", seed=0)


def _frames(n: int = 2, h: int = 40, w: int = 56, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def runner() -> InferenceRunner:
    return InferenceRunner(TINY)


@pytest.fixture(scope="module")
def prediction(runner):
    return runner.predict(_frames())


def test_device_and_dtype(runner):
    assert runner.device == torch.device("cpu")
    assert runner.dtype == torch.float32
    assert not runner.model.training


def test_all_keys_shapes_dtypes_finite(prediction):
    S, H, W = 2, 364, 518  # 40x56 -> width 518, height round(37*40/56)=26 patches
    expected = {
        "pose_enc": (S, 9),
        "depth": (S, H, W, 1),
        "depth_conf": (S, H, W),
        "world_points": (S, H, W, 3),
        "world_points_conf": (S, H, W),
        "extrinsic": (S, 3, 4),
        "intrinsic": (S, 3, 3),
        "world_points_from_depth": (S, H, W, 3),
        "images": (S, 3, H, W),
    }
    assert set(prediction) == set(expected)
    for key, shape in expected.items():
        arr = prediction[key]
        assert isinstance(arr, np.ndarray), key
        assert arr.shape == shape, key
        assert arr.dtype == np.float32, key
        assert np.isfinite(arr).all(), key
    assert (prediction["depth"] > 0).all()
    assert (prediction["depth_conf"] >= 1).all()


def test_images_are_the_preprocessed_input(prediction):
    np.testing.assert_array_equal(prediction["images"], preprocess_images(_frames()).numpy())


def test_cameras_and_depth_points_are_consistent(prediction):
    H, W = prediction["depth"].shape[1:3]
    extrinsic, intrinsic = pose_encoding_to_extri_intri(torch.from_numpy(prediction["pose_enc"]), (H, W))
    np.testing.assert_array_equal(prediction["extrinsic"], extrinsic.numpy())
    np.testing.assert_array_equal(prediction["intrinsic"], intrinsic.numpy())
    np.testing.assert_allclose(prediction["intrinsic"][:, :2, 2], [[W / 2, H / 2]] * 2)
    expected = unproject_depth_map_to_point_map(prediction["depth"], prediction["extrinsic"], prediction["intrinsic"])
    np.testing.assert_array_equal(prediction["world_points_from_depth"], expected)


def test_depth_points_project_back_to_their_pixels(prediction):
    """Independent of the unprojection code: world -> camera -> pixel gives the pixel grid."""
    pts = prediction["world_points_from_depth"][0].astype(np.float64)  # [H, W, 3]
    E, K = prediction["extrinsic"][0].astype(np.float64), prediction["intrinsic"][0].astype(np.float64)
    cam = pts @ E[:, :3].T + E[:, 3]
    np.testing.assert_allclose(cam[..., 2], prediction["depth"][0, ..., 0], rtol=1e-4)
    uv = cam @ K.T
    uv = uv[..., :2] / uv[..., 2:]
    H, W = pts.shape[:2]
    grid = np.stack(np.meshgrid(np.arange(W), np.arange(H)), -1)
    np.testing.assert_allclose(uv, grid, atol=2e-2)


def test_same_seed_same_output_other_seed_differs(prediction):
    again = InferenceRunner(TINY).predict(_frames())
    for key in prediction:
        np.testing.assert_array_equal(again[key], prediction[key])
    other = InferenceRunner(ModelSettings(preset="tiny", device="cpu", seed=1)).predict(_frames())
    assert not np.array_equal(other["depth"], prediction["depth"])


def test_no_frames(runner):
    with pytest.raises(NoFramesError):
        runner.predict([])


def test_missing_checkpoint_names_file_and_script(tmp_path):
    settings = ModelSettings(preset="vggt-1b", device="cpu", checkpoint=str(tmp_path / "model.pt"))
    with pytest.raises(ModelUnavailableError) as info:
        InferenceRunner(settings)
    assert "model.pt" in info.value.message
    assert "scripts/fetch_weights.py" in info.value.message
    assert info.value.code == "ERROR_MODEL_NOT_LOADED"


@pytest.mark.parametrize("content", [b"", b"not a checkpoint" * 100])
def test_corrupt_checkpoint(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    settings = ModelSettings(preset="vggt-1b", device="cpu", checkpoint=str(path))
    with pytest.raises(ModelUnavailableError, match="unusable") as info:
        InferenceRunner(settings)  # the file is read before the full-size model is built
    assert "model.pt" in info.value.message


def test_checkpoint_of_another_model_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"aggregator.camera_token": torch.zeros(3)}, path)
    with pytest.raises(ModelUnavailableError, match="does not match"):
        load_trained_model(VGGTConfig.tiny(), path)


def test_memory_guard_refuses_before_running(runner):
    calls = []
    model = runner.model
    small = InferenceRunner.from_model(model, TINY, memory_probe=lambda device: 64 * 1024**2)  # 64 MiB free
    original = model.forward
    model.forward = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        with pytest.raises(TooManyFramesError) as info:
            small.predict(_frames(3))
    finally:
        del model.forward
    assert not calls, "the forward pass must not start"
    msg = info.value.message
    assert "3 frames" in msg and "GiB" in msg and "0.1 GiB is available" in msg


def test_memory_guard_absurd_frame_count(runner):
    huge = InferenceRunner.from_model(runner.model, TINY, memory_probe=lambda device: 16 * 1024**3)
    huge.check_memory(8, 518, 518)  # fits
    with pytest.raises(TooManyFramesError, match="100000 frames"):
        huge.check_memory(100_000, 518, 518)


def test_unknown_free_memory_skips_the_guard(runner):
    blind = InferenceRunner.from_model(runner.model, TINY, memory_probe=lambda device: None)
    assert blind.check_memory(1_000_000, 518, 518).working > 0


def test_out_of_memory_during_forward_becomes_too_many_frames(runner, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(runner.model, "forward", oom)
    with pytest.raises(TooManyFramesError, match="out of GPU memory"):
        runner.predict(_frames(1))


def test_estimate_grows_with_frames():
    cfg = VGGTConfig()
    one = estimate_memory(cfg, 1, 518, 518, weight_bytes=0, act_bytes=2)
    many = estimate_memory(cfg, 200, 518, 518, weight_bytes=0, act_bytes=2)
    assert 0 < one.working < many.working
    assert many.kept_layers == 200 * one.kept_layers
    eight = estimate_memory(cfg, 8, 518, 518, weight_bytes=0, act_bytes=2)
    assert many.head_chunk == eight.head_chunk > one.head_chunk  # chunked: bounded by head_chunk_frames


def test_checkpoint_round_trip(tmp_path, runner, prediction):
    path = tmp_path / "model.pt"
    torch.save(runner.model.state_dict(), path)
    loaded = InferenceRunner.from_model(load_trained_model(VGGTConfig.tiny(), path), TINY)
    again = loaded.predict(_frames())
    np.testing.assert_array_equal(again["world_points"], prediction["world_points"])
