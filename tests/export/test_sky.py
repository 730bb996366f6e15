"""Sky masking: refused without a local model, applied through confidence when present."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from serve_app.export import ExportOptions, export_glb, sky
from serve_app.export.points import select_points
from tcp_proxy.errors import SkySegmentationUnavailableError


def test_refused_without_a_configured_model(predictions):
    with pytest.raises(SkySegmentationUnavailableError, match="skyseg.onnx"):
        export_glb(predictions, ExportOptions(mask_sky=True))


def test_refused_when_the_file_is_missing(predictions, tmp_path):
    with pytest.raises(SkySegmentationUnavailableError, match="not found"):
        export_glb(predictions, ExportOptions(mask_sky=True, skyseg_model=str(tmp_path / "skyseg.onnx")))


def test_refused_without_onnxruntime(tmp_path, monkeypatch):
    model = tmp_path / "skyseg.onnx"
    model.write_bytes(b"not a model")
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    sky._onnx_segmenter.cache_clear()
    with pytest.raises(SkySegmentationUnavailableError, match="onnxruntime"):
        sky.load_segmenter(str(model))
    sky._onnx_segmenter.cache_clear()


def test_error_code_is_the_wire_code():
    assert SkySegmentationUnavailableError.code == "ERROR_SKY_MASK_UNAVAILABLE"


def test_model_input_is_normalised_320_square():
    batch = sky.model_input(np.full((7, 5, 3), 255, np.uint8))
    assert batch.shape == (1, 3, 320, 320) and batch.dtype == np.float32
    np.testing.assert_allclose(batch[0, :, 0, 0], (1 - sky.IMAGENET_MEAN) / sky.IMAGENET_STD, rtol=1e-6)


def test_non_sky_mask_normalises_then_thresholds():
    raw = np.array([[0.0, 0.1], [0.2, 1.0]])  # normalised: 0, 25, 51, 255
    np.testing.assert_array_equal(sky.non_sky_mask(raw, 2, 2), [[1, 1], [0, 0]])
    np.testing.assert_array_equal(sky.non_sky_mask(np.ones((3, 3)), 2, 2), np.ones((2, 2)))


def test_sky_pixels_are_dropped(predictions):
    def top_row_is_sky(image: np.ndarray) -> np.ndarray:
        assert image.dtype == np.uint8 and image.shape == (2, 2, 3)
        return np.array([[1.0, 1.0], [0.0, 0.0]])

    scale = sky.sky_confidence_scale(predictions["images"], top_row_is_sky)
    assert scale.shape == (2, 2, 2)
    vertices, _ = select_points(predictions, ExportOptions(conf_percentile=0), conf_scale=scale)
    assert [int(x) - 1 for x in vertices[:, 0]] == [2, 3, 6, 7]
