"""Re-export: a stored result exported again from its stored predictions writes the points an export of
the float32 originals writes with the same options, stored as a new result; refusals store nothing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from glb_reader import nodes
from sqlalchemy import func, select

from devkit.reexport_bench import synthetic_predictions
from serve_app.config import AppSettings
from serve_app.export import export_glb
from serve_app.stages import ExportStage, Job, Predictions
from serve_app.stages.reexport import BadOptionsError, PredictionsExpiredError, export_options
from serve_app.storage.deletions import predictions_key
from serve_app.storage.lifecycle import ResultLifecycle
from serve_app.storage.models import GlbFile, User
from tcp_proxy.errors import HashNotFoundError

FRAMES, HEIGHT, WIDTH = 3, 24, 32


@pytest.fixture(scope="module")
def arrays():
    return synthetic_predictions(FRAMES, HEIGHT, WIDTH)


@pytest.fixture
def stage(owned_store):
    return ExportStage(AppSettings(), owned_store)


@pytest.fixture
def stored(stage, arrays):
    """The hash of alice's (id 7) result exported and stored from `arrays`."""
    return stage.run(Predictions(Job(7, "garden.jpg"), arrays, FRAMES)).hashed_name


def rows(store) -> int:
    with store.database.session() as session:
        return session.scalar(select(func.count()).select_from(GlbFile))


def assert_same_points(glb: bytes, expected: bytes) -> None:
    ours, theirs = nodes(glb), nodes(expected)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert np.array_equal(ours[name].vertices, theirs[name].vertices), name
        assert np.array_equal(ours[name].colors, theirs[name].colors), name


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"source": "depth"},
        {"conf_percentile": 50, "mask_black_bg": True, "mask_white_bg": True},
        {"show_cameras": True, "frame": -1},
        {"max_points": 100},
        {"max_points": None, "conf_percentile": 0},
    ],
)
def test_the_points_are_those_of_an_export_of_the_originals(stage, stored, arrays, options):
    result = stage.reexport(7, stored, options)
    expected = export_glb(arrays, dataclasses.replace(AppSettings().export, **options))
    assert_same_points(result.glb, expected.glb)
    assert result.point_count == expected.point_count and result.frame_count == FRAMES


def test_a_higher_percentile_keeps_fewer_points(stage, stored):
    counts = [stage.reexport(7, stored, {"conf_percentile": p, "max_points": None}).point_count for p in (0, 50, 90)]
    assert counts[0] > counts[1] > counts[2] > 0


def test_options_not_given_come_from_the_export_settings(owned_store, arrays):
    stage = ExportStage(AppSettings.from_dict({"export": {"max_points": 50}}), owned_store)
    hashed_name = stage.run(Predictions(Job(7, "a.jpg"), arrays, FRAMES)).hashed_name
    assert stage.reexport(7, hashed_name, {"conf_percentile": 0}).point_count == 50


def test_it_is_stored_as_a_new_result_without_predictions(stage, stored, owned_store):
    result = stage.reexport(7, stored, {"conf_percentile": 20})
    assert result.hashed_name != stored and owned_store.read(result.hashed_name) == result.glb
    with owned_store.database.session() as session:
        row = session.scalars(select(GlbFile).where(GlbFile.hashed_name == result.hashed_name)).one()
        assert (row.user_id, row.original_name, row.predictions_size) == (7, "garden.jpg (re-export)", None)
        assert row.file_size == len(result.glb)
    assert owned_store.locate_thumbnail(result.hashed_name)
    with pytest.raises(PredictionsExpiredError):  # a re-export has none of its own
        stage.reexport(7, result.hashed_name, {})


def test_expired_predictions_are_refused(stage, stored, owned_store):
    ResultLifecycle(owned_store.database, owned_store.root).expire_predictions(0)
    with pytest.raises(PredictionsExpiredError) as raised:
        stage.reexport(7, stored, {})
    assert raised.value.code == "ERROR_PREDICTIONS_EXPIRED" and rows(owned_store) == 1


def test_a_missing_predictions_file_counts_as_expired(stage, stored, owned_store):
    owned_store.root.delete(predictions_key(owned_store.locate(stored)))
    with pytest.raises(PredictionsExpiredError):
        stage.reexport(7, stored, {})


def test_another_users_hash_is_not_found(stage, stored, owned_store):
    with owned_store.database.session() as session:
        session.add(User(id=8, username="bob", password_hash="x"))
    for user, text in ((8, stored), (7, "0" * 64), (7, "../etc")):
        with pytest.raises(HashNotFoundError):
            stage.reexport(user, text, {})
    assert rows(owned_store) == 1


def test_nothing_is_stored_with_predictions_ttl_zero(owned_store, arrays):
    stage = ExportStage(AppSettings.from_dict({"storage": {"predictions_ttl_s": 0}}), owned_store)
    hashed_name = stage.run(Predictions(Job(7, "a.jpg"), arrays, FRAMES)).hashed_name
    assert not list(owned_store.root.path.rglob("*.npz"))
    with pytest.raises(PredictionsExpiredError):
        stage.reexport(7, hashed_name, {})


@pytest.mark.parametrize(
    "options",
    [
        {"colour": "red"},
        {"downsample": "voxel"},  # a setting, not an option of the adjust panel
        {"conf_percentile": 100.5},
        {"conf_percentile": -1},
        {"conf_percentile": "50"},
        {"conf_percentile": float("nan")},
        {"conf_percentile": True},
        {"source": "lidar"},
        {"show_cameras": 1},
        {"mask_black_bg": "true"},
        {"frame": FRAMES},
        {"frame": -FRAMES - 1},
        {"frame": 1.0},
        {"max_points": 0},
        {"max_points": 2.5},
    ],
)
def test_bad_options_are_refused_and_store_nothing(stage, stored, owned_store, options):
    with pytest.raises(BadOptionsError) as raised:
        stage.reexport(7, stored, options)
    assert raised.value.code == "ERROR_BAD_OPTIONS" and rows(owned_store) == 1


def test_options_at_their_bounds_are_taken():
    base = AppSettings().export
    edges = {"conf_percentile": 100, "frame": -FRAMES, "max_points": 1, "source": "depth", "show_cameras": True}
    assert dataclasses.asdict(export_options(base, edges, FRAMES)) == dataclasses.asdict(
        dataclasses.replace(base, **edges)
    )
    assert export_options(base, {"conf_percentile": 0, "frame": FRAMES - 1}, FRAMES).frame == FRAMES - 1
    assert export_options(base, {"frame": 99}, None).frame == 99  # frame count not known yet
    with pytest.raises(BadOptionsError):
        export_options(base, ["conf_percentile"], FRAMES)  # type: ignore[arg-type]


def test_a_result_of_the_inference_stage_can_be_exported_from_either_source(owned_store):
    from stage_doubles import PredictableRunner

    from serve_app.stages import Frames, InferenceStage

    settings = AppSettings()  # the default export reads the point map only; the depth source is stored too
    frames = Frames(Job(7, "a.jpg"), [np.zeros((3, 4, 3), np.uint8)] * 2, "images")
    predictions = InferenceStage(settings, runner=PredictableRunner()).run(frames)
    stage = ExportStage(settings, owned_store)
    hashed_name = stage.run(predictions).hashed_name
    assert stage.reexport(7, hashed_name, {"source": "depth", "conf_percentile": 0}).point_count == 24


def test_it_reads_the_predictions_from_a_bucket(owned_store, s3_server, arrays):
    from serve_app.storage import GlbStore
    from serve_app.storage.blob_root import open_root

    bucket = open_root(s3_server.new_bucket_url(), endpoint_url=s3_server.endpoint_url)
    stage = ExportStage(AppSettings(), GlbStore(owned_store.database, bucket))
    hashed_name = stage.run(Predictions(Job(7, "a.jpg"), arrays, FRAMES)).hashed_name
    options = {"conf_percentile": 40, "show_cameras": True}
    result = stage.reexport(7, hashed_name, options)
    assert result.glb == export_glb(arrays, dataclasses.replace(AppSettings().export, **options)).glb
    assert bucket.is_file(predictions_key(stage.store.locate(hashed_name)))
