"""`GlbExporter`: the export stage (trimesh-compatible GLB, SQLAlchemy row) as a deployment."""

from __future__ import annotations

from serve_app.stages import ExportStage

from .stage_deployment import StageDeployment


class GlbExporter(StageDeployment):
    """Predictions to a GLB saved as file + row (its GlbStore opens the database on first use)."""

    stage_class = ExportStage
    serve_options = {"ray_actor_options": {"num_cpus": 0.25}, "max_ongoing_requests": 4}
