"""`GlbExporter`: the export stage (trimesh-compatible GLB, SQLAlchemy row) as a deployment.

Each replica also applies the results' retention on a timer (`storage.retention_days`, every
`storage.expire_every_s`, a bounded batch each time: `serve_app.storage.lifecycle.ExpiryTimer`).
A save that fails in the storage root or the database is counted (`vggt_storage_errors`, operation
"save": the VGGTStorageErrors alert) before the error goes on to the caller. `reexport` stores a new
GLB of a stored result from its stored predictions with other export options (`ExportStage.reexport`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from serve_app.config import AppSettings
from serve_app.stages import ExportStage
from serve_app.storage.lifecycle import ExpiryTimer

from .stage_deployment import StageDeployment


class GlbExporter(StageDeployment):
    """Predictions to a GLB saved as file + row (its GlbStore opens the database on first use)."""

    stage_class = ExportStage
    serve_options = {"ray_actor_options": {"num_cpus": 0.25}, "max_ongoing_requests": 4}

    def __init__(self, settings: AppSettings) -> None:
        super().__init__(settings)
        self.expiry = ExpiryTimer.start(settings.storage)

    def run(self, item: Any) -> Any:
        try:
            return super().run(item)
        except (OSError, SQLAlchemyError):
            self.metrics.record_storage_error("save")
            raise

    def reexport(self, user_id: int, hash: str, options: dict) -> Any:
        """The user's result `hash` exported again with `options`, stored as a new GLB: a Reconstruction."""
        try:
            return self.stage.reexport(user_id, hash, options)
        except (OSError, SQLAlchemyError):
            self.metrics.record_storage_error("save")
            raise
