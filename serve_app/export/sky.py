"""Optional sky masking with a local `skyseg.onnx` segmentation model.

We do not ship or download the model: masking runs only when a local file is
configured and onnxruntime is installed; otherwise it is refused with
`SkySegmentationUnavailableError`. Sky pixels get confidence 0 before the
point selection, so they never reach the cloud.
"""

from __future__ import annotations

import functools
import os
from typing import Callable

import cv2
import numpy as np

from tcp_proxy.errors import SkySegmentationUnavailableError

MODEL_INPUT_SIZE = 320  # the segmentation model takes 320x320 RGB
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
SKY_LEVEL = 32  # normalised model outputs (0-255) below this are not sky

# RGB uint8 [H,W,3] -> raw model output [h,w] (higher = more sky)
Segment = Callable[[np.ndarray], np.ndarray]


def load_segmenter(model_path: str | None) -> Segment:
    """A segmentation function over one RGB image, or a clear refusal."""
    if not model_path:
        raise SkySegmentationUnavailableError(
            "sky masking needs a local skyseg.onnx model, and none is configured"
        )
    if not os.path.isfile(model_path):
        raise SkySegmentationUnavailableError(f"sky segmentation model not found: {model_path}")
    return _onnx_segmenter(os.path.abspath(model_path))


@functools.lru_cache(maxsize=2)
def _onnx_segmenter(model_path: str) -> Segment:
    try:
        import onnxruntime
    except ImportError:
        raise SkySegmentationUnavailableError("sky masking needs the onnxruntime package") from None
    try:
        session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a corrupt or foreign file
        raise SkySegmentationUnavailableError(f"cannot load sky model {model_path}: {exc}") from None
    input_name = session.get_inputs()[0].name
    output_name = session.get_outputs()[0].name

    def segment(image: np.ndarray) -> np.ndarray:
        batch = model_input(image)
        return np.asarray(session.run([output_name], {input_name: batch})[0]).squeeze()

    return segment


def model_input(image: np.ndarray) -> np.ndarray:
    """RGB uint8 [H,W,3] -> normalised float32 [1,3,320,320]."""
    resized = cv2.resize(image, (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE)).astype(np.float32)
    normalised = (resized / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return normalised.transpose(2, 0, 1)[None].astype(np.float32)


def non_sky_mask(raw_output: np.ndarray, height: int, width: int) -> np.ndarray:
    """Raw model output -> float32 [H,W]: 1 where the pixel is not sky, else 0."""
    raw = np.asarray(raw_output, np.float64)
    span = raw.max() - raw.min()
    levels = np.zeros(raw.shape, np.uint8) if span == 0 else ((raw - raw.min()) / span * 255).astype(np.uint8)
    levels = cv2.resize(levels, (width, height))
    return (levels < SKY_LEVEL).astype(np.float32)


def sky_confidence_scale(images: np.ndarray, segment: Segment) -> np.ndarray:
    """[S,H,W] factors (0 on sky, 1 elsewhere) for preprocessed images [S,3,H,W] in [0, 1]."""
    frames = (np.asarray(images).transpose(0, 2, 3, 1) * 255).astype(np.uint8)
    height, width = frames.shape[1:3]
    return np.stack([non_sky_mask(segment(np.ascontiguousarray(f)), height, width) for f in frames])
