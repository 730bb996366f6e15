"""Export: predictions to GLB bytes (`serve_app.export`), stored as file + row when the job has an owner,
with a preview picture of the first frame for the share page (`serve_app.export.thumbnail`) and, for
`storage.predictions_ttl_s`, the predictions a later export with other options reads
(`serve_app.storage.predictions`; `reexport`, `serve_app.stages.reexport`)."""

from __future__ import annotations

from collections.abc import Mapping

from serve_app.config import AppSettings
from serve_app.export import export_glb
from serve_app.export.thumbnail import first_frame_jpeg
from serve_app.storage import Database, GlbStore
from serve_app.storage import predictions as stored_predictions
from serve_app.storage.blob_root import settings_root
from serve_app.storage.quota import Quota

from .messages import Predictions, Reconstruction
from .reexport import reexport
from .stage import Progress, Stage


class ExportStage(Stage[Predictions, Reconstruction]):
    name = "export"

    def __init__(self, settings: AppSettings, store: GlbStore | None = None) -> None:
        """store: the GLB store to save into; else opened from settings.storage on first save."""
        self.options = settings.export
        self._storage = settings.storage
        self._store = store

    @property
    def store(self) -> GlbStore:
        if self._store is None:
            db = Database(self._storage.database_url)
            db.upgrade()  # an empty or older database is brought up to date
            self._store = GlbStore(db, settings_root(self._storage), quota=Quota.of(self._storage))
        return self._store

    def run(self, item: Predictions, progress: Progress | None = None) -> Reconstruction:
        """progress: called with (steps done, steps) after building the GLB and after storing it."""
        report = progress or (lambda _done, _total: None)
        steps = 1 if item.job.user_id is None else 2
        report(0, steps)
        exported = export_glb(item.arrays, self.options)
        report(1, steps)
        hashed_name = None
        if item.job.user_id is not None:
            job = item.job
            hashed_name = self.store.save(
                exported.glb,
                job.user_id,
                job.original_name,
                source_digest=job.source_digest,
                thumbnail=first_frame_jpeg(item.arrays.get("images")),
                predictions=stored_predictions.pack(item.arrays) if self._storage.predictions_ttl_s > 0 else None,
            ).hashed_name
            report(2, steps)
        return Reconstruction(
            glb=exported.glb,
            hashed_name=hashed_name,
            frame_count=item.frame_count,
            point_count=exported.point_count,
        )

    def reexport(self, user_id: int, hash_text: str, options: Mapping[str, object]) -> Reconstruction:
        """A new stored GLB of the user's result `hash_text`, exported from its stored predictions with
        the export settings changed by `options` (`serve_app.stages.reexport`)."""
        return reexport(self.store, self.options, user_id, hash_text, options)
