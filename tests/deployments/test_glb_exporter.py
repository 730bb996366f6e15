"""GlbExporter without Ray: a save that fails in storage is counted for the storage-errors alert, and raised."""

from __future__ import annotations

import logging

import pytest
from stage_doubles import small_predictions

from serve_app.config import AppSettings
from serve_app.deployments.glb_exporter import GlbExporter
from serve_app.deployments.replica_logging import SERVICE_LOGGERS
from serve_app.stages import Job, Predictions


@pytest.fixture(autouse=True)
def service_loggers_restored():
    """A deployment sends the service's loggers through Serve's (`use_serve_logging`): undone after each test,
    so later tests of this process see the records propagate as before."""
    loggers = [logging.getLogger(name) for name in SERVICE_LOGGERS]
    saved = [(logger, list(logger.handlers), logger.propagate, logger.level) for logger in loggers]
    yield
    for logger, handlers, propagate, level in saved:
        logger.handlers = handlers
        logger.propagate = propagate
        logger.setLevel(level)


class StorageErrorCounts:
    def __init__(self) -> None:
        self.operations: list[str] = []

    def record_storage_error(self, operation: str) -> None:
        self.operations.append(operation)

    def record_stage(self, stage: str, seconds: float) -> None:
        pass

    def record_frames(self, source: str, count: int) -> None:
        pass


def exporter(tmp_path, storage_root) -> tuple[GlbExporter, StorageErrorCounts]:
    settings = AppSettings.from_dict(
        {"storage": {"database_url": f"sqlite:///{tmp_path / 'service.db'}", "storage_root": str(storage_root)}}
    )
    deployment = GlbExporter(settings)
    deployment.metrics = counts = StorageErrorCounts()
    return deployment, counts


def test_a_save_the_storage_root_refuses_is_counted_and_raised(tmp_path):
    not_a_folder = tmp_path / "root"
    not_a_folder.write_bytes(b"a file where the storage root should be")
    deployment, counts = exporter(tmp_path, not_a_folder)
    with pytest.raises(Exception) as raised:
        deployment.run(Predictions(Job(7, "clip.mp4"), small_predictions(2), 2))
    assert counts.operations == ["save"], raised.value


def test_an_export_without_an_owner_counts_nothing(tmp_path):
    deployment, counts = exporter(tmp_path, tmp_path / "root")
    result = deployment.run(Predictions(Job(), small_predictions(2), 2))
    assert result.glb[:4] == b"glTF" and counts.operations == []


def test_a_bad_option_is_not_a_storage_error(tmp_path):
    deployment, counts = exporter(tmp_path, tmp_path / "root")
    deployment.stage.options = AppSettings.from_dict({"export": {"frame": 5}}).export
    with pytest.raises(ValueError, match="frame 5 is out of range"):
        deployment.run(Predictions(Job(7, "x"), small_predictions(2), 2))
    assert counts.operations == []


def test_reexport_stores_a_new_glb_from_the_stored_predictions(tmp_path):
    from serve_app.stages.reexport import PredictionsExpiredError
    from serve_app.storage import Database
    from serve_app.storage.models import User

    db = Database(f"sqlite:///{tmp_path / 'service.db'}")
    db.upgrade()
    with db.session() as session:
        session.add(User(id=7, username="alice", password_hash="x"))
    db.dispose()
    deployment, counts = exporter(tmp_path, tmp_path / "root")
    stored = deployment.run(Predictions(Job(7, "clip.mp4"), small_predictions(2), 2))

    again = deployment.reexport(user_id=7, hash=stored.hashed_name, options={"conf_percentile": 0, "max_points": 5})

    assert again.point_count == 5 and again.hashed_name not in (None, stored.hashed_name)
    assert deployment.stage.store.read(again.hashed_name) == again.glb
    with pytest.raises(PredictionsExpiredError):  # a re-export keeps no predictions of its own
        deployment.reexport(7, again.hashed_name, {})
    assert counts.operations == []  # refusals are not storage errors
