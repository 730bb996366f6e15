"""Stand-ins for the model in pipeline and stage tests: predictable predictions and a runner giving them."""

from __future__ import annotations

import numpy as np


def small_predictions(frames: int) -> dict[str, np.ndarray]:
    """Every array an InferenceRunner returns, for `frames` frames of 3x4 pixels.

    Frame s, pixel (i, j) lies at (s, i, j) with confidence 1 + s.
    """
    s, i, j = np.meshgrid(np.arange(frames), np.arange(3), np.arange(4), indexing="ij")
    points = np.stack([s, i, j], axis=-1).astype(np.float32)
    conf = (1.0 + s).astype(np.float32)
    return {
        "pose_enc": np.zeros((frames, 9), np.float32),
        "depth": np.ones((frames, 3, 4, 1), np.float32),
        "depth_conf": conf,
        "world_points": points,
        "world_points_conf": conf,
        "extrinsic": np.tile(np.eye(4, dtype=np.float32)[:3], (frames, 1, 1)),
        "intrinsic": np.tile(np.eye(3, dtype=np.float32), (frames, 1, 1)),
        "world_points_from_depth": points,
        "images": np.full((frames, 3, 3, 4), 0.5, np.float32),
    }


class PredictableRunner:
    """Stands in for the VGGT runner: the predictions above, and the frame counts it saw."""

    device = "cpu"

    def __init__(self) -> None:
        self.seen: list[int] = []

    def predict(self, frames):
        self.seen.append(len(frames))
        return small_predictions(len(frames))
