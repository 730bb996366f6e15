"""Predictions to GLB: `predictions_to_glb` (bytes) and `export_glb` (bytes plus counts)."""

from .points import prediction_keys
from .scene import GlbExport, export_glb, predictions_to_glb

__all__ = ["GlbExport", "export_glb", "predictions_to_glb", "prediction_keys"]
