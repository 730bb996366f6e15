"""ExportStage: GLB bytes with the configured options; stored as file + row only for a job with an owner."""

from __future__ import annotations

import pytest
from stage_doubles import small_predictions

from serve_app.config import AppSettings
from serve_app.stages import ExportStage, Job, Predictions
from serve_app.storage.models import GlbFile


def _predictions(job: Job, frames: int = 2) -> Predictions:
    return Predictions(job, small_predictions(frames), frames)


def test_without_owner_the_glb_is_returned_and_no_database_is_touched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = ExportStage(AppSettings()).run(_predictions(Job()))
    assert result.glb[:4] == b"glTF" and result.hashed_name is None
    assert result.frame_count == 2 and result.point_count == 24  # 2 frames x 12 pixels, all kept
    assert list(tmp_path.iterdir()) == []  # no database file, no out/ folder
    with pytest.raises(ValueError):
        result.name  # noqa: B018 - an unstored result has no reply name


def test_options_come_from_the_settings():
    settings = AppSettings.from_dict({"export": {"conf_percentile": 0, "frame": 1, "max_points": 5}})
    assert ExportStage(settings).run(_predictions(Job())).point_count == 5  # frame 1: 12 points, capped


def test_with_owner_it_stores_file_and_row(owned_store):
    result = ExportStage(AppSettings(), owned_store).run(_predictions(Job(7, "clip.mp4")))
    assert len(result.hashed_name) == 64 and result.name == f"{result.hashed_name}.glb"
    assert owned_store.read(result.hashed_name) == result.glb
    with owned_store._db.session() as session:
        row = session.query(GlbFile).filter_by(hashed_name=result.hashed_name).one()
        assert (row.user_id, row.original_name, row.file_size) == (7, "clip.mp4", len(result.glb))


def test_a_bad_option_stores_nothing(owned_store):
    settings = AppSettings.from_dict({"export": {"frame": 5}})
    with pytest.raises(ValueError, match="frame 5 is out of range"):
        ExportStage(settings, owned_store).run(_predictions(Job(7, "x")))
    assert not (owned_store.root.path / "out").exists() or not any((owned_store.root.path / "out").rglob("*"))
    with owned_store._db.session() as session:
        assert session.query(GlbFile).count() == 0


def test_a_stored_result_gets_a_preview_picture_of_its_first_frame(owned_store):
    import io

    from PIL import Image

    from serve_app.export.thumbnail import THUMBNAIL_WIDTH

    item = _predictions(Job(7, "clip.mp4"))
    result = ExportStage(AppSettings(), owned_store).run(item)
    file, _size = owned_store.root.open(owned_store.locate_thumbnail(result.hashed_name))
    with file:
        picture = Image.open(io.BytesIO(file.read()))
    assert picture.format == "JPEG" and picture.size[0] == THUMBNAIL_WIDTH
