"""Predictions to GLB: `export_glb` (bytes plus counts) with `ExportOptions`, and `predictions_to_glb` (bytes)."""

from .options import ExportOptions
from .points import prediction_keys
from .scene import GlbExport, export_glb, predictions_to_glb

__all__ = ["ExportOptions", "GlbExport", "export_glb", "predictions_to_glb", "prediction_keys"]
