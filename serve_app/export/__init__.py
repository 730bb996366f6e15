"""Predictions to GLB: `predictions_to_glb` (bytes) and `export_glb` (bytes plus counts)."""

from .scene import GlbExport, export_glb, predictions_to_glb

__all__ = ["GlbExport", "export_glb", "predictions_to_glb"]
