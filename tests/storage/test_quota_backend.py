"""Quotas through `ServeBackend` over the real stages (decode, export with its store; a predictable model).

Refused early (the stages never run), enforced again at store time, evicting
under `evict_oldest`, and never in the way of a stored result answered again;
and once over the wire: the TCP server in front of the same backend answers
`ERROR_QUOTA_EXCEEDED`, and a deleted result's hash `ERROR_HASH_NOT_FOUND`.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from proxy_fakes import (
    frame,
    image_payload,
    login_payload,
    read_reconstruction,
    read_u32_block,
)
from stage_doubles import PredictableRunner

from serve_app.accounts import Accounts
from serve_app.config import AppSettings
from serve_app.pipeline import Pipeline
from serve_app.serve_backend import ServeBackend
from serve_app.stages import InferenceStage
from serve_app.storage import Database, GlbStore, check_storage
from serve_app.storage.blob_root import LocalRoot
from serve_app.storage.lifecycle import ResultLifecycle
from serve_app.storage.models import User as UserRow
from serve_app.storage.quota import usage
from serve_app.storage.users import UserStore
from tcp_proxy.backend import User
from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN
from tcp_proxy.errors import HashNotFoundError, QuotaExceededError
from tcp_proxy.server import start_server

ANN = User(7, "ann", False)


class PipelineRunner:
    """The backend's StageRunner over the stages in this process; counts the runs."""

    def __init__(self, settings: AppSettings) -> None:
        self.pipeline = Pipeline(settings, stages=[InferenceStage(settings, PredictableRunner())])
        self.runs = 0

    async def run(self, upload):
        self.runs += 1
        return await asyncio.to_thread(self.pipeline.run, upload)

    def is_replica_lost(self, exc: BaseException) -> bool:
        return False


def settings_for(tmp_path, **storage) -> AppSettings:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    settings = AppSettings.from_dict({"storage": {"database_url": url, "storage_root": str(tmp_path), **storage}})
    db = Database(url)
    db.upgrade()
    with db.session() as session:
        session.merge(UserRow(id=ANN.id, username=ANN.username, password_hash="x"))
    db.dispose()
    return settings


def uploads(settings: AppSettings, runner: PipelineRunner, *image_sets) -> list:
    """The outcome (reconstruction or exception) of each IMAGE upload by ann, in turn."""

    async def scenario():
        accounts = await Accounts.open(settings)
        backend = ServeBackend(accounts, runner, settings)
        outcomes = []
        try:
            for images in image_sets:
                try:
                    outcomes.append(await backend.reconstruct_images(ANN, images))
                except Exception as exc:
                    outcomes.append(exc)
        finally:
            accounts.close()
        return outcomes

    return asyncio.run(scenario())


def stored(settings: AppSettings) -> list[str]:
    db = Database(settings.storage.database_url)
    try:
        return [r.hashed_name for r in ResultLifecycle(db, LocalRoot(settings.storage.storage_root)).list()]
    finally:
        db.dispose()


def test_refused_before_the_stages_run_and_a_stored_result_still_answers(tmp_path, photo_bytes):
    settings = settings_for(tmp_path, max_results_per_user=1)
    runner = PipelineRunner(settings)
    first, again, other = uploads(settings, runner, photo_bytes[:2], photo_bytes[:2], photo_bytes[1:])
    assert again.hashed_name == first.hashed_name  # the same upload: its stored result, no refusal
    assert isinstance(other, QuotaExceededError) and other.code == "ERROR_QUOTA_EXCEEDED"
    assert runner.runs == 1  # the refused upload never reached the stages
    assert stored(settings) == [first.hashed_name]


def test_the_store_refuses_what_the_early_check_could_not_know(tmp_path, photo_bytes):
    settings = settings_for(tmp_path)
    (first,) = uploads(settings, PipelineRunner(settings), photo_bytes[:2])
    db = Database(settings.storage.database_url)
    with db.session() as session:  # the GLB and its stored predictions
        used = usage(session, ANN.id).bytes
    db.dispose()
    limited = settings_for(tmp_path, max_bytes_per_user=used + 10)  # room left, not a whole result
    runner = PipelineRunner(limited)
    (second,) = uploads(limited, runner, photo_bytes[1:])
    assert isinstance(second, QuotaExceededError) and runner.runs == 1  # it ran, then storing was refused
    assert stored(limited) == [first.hashed_name]
    db = Database(limited.storage.database_url)
    assert check_storage(db, tmp_path, min_age_s=0).consistent  # nothing of the refused GLB left
    db.dispose()


def test_evict_oldest_stores_the_new_result_in_place_of_the_oldest(tmp_path, photo_bytes):
    settings = settings_for(tmp_path, max_results_per_user=1, quota_policy="evict_oldest")
    first, second = uploads(settings, PipelineRunner(settings), photo_bytes[:2], photo_bytes[1:])
    assert stored(settings) == [second.hashed_name]
    db = Database(settings.storage.database_url)
    try:
        with pytest.raises(HashNotFoundError):
            GlbStore(db, tmp_path).open(first.hashed_name)
        assert check_storage(db, tmp_path, min_age_s=0).consistent
    finally:
        db.dispose()


def test_over_the_wire_the_quota_is_an_error_code_and_a_deleted_hash_is_not_found(tmp_path, photo_bytes):
    settings = settings_for(tmp_path, max_results_per_user=1)
    db = Database(settings.storage.database_url)
    UserStore(db, settings.auth).create("bea", "bea-password")
    lifecycle = ResultLifecycle(db, LocalRoot(tmp_path))

    async def scenario():
        accounts = await Accounts.open(settings)
        backend = ServeBackend(accounts, PipelineRunner(settings), settings)
        proxy = dataclasses.replace(settings.proxy, host="127.0.0.1", port=0, spool_dir=str(tmp_path))
        server = await start_server(proxy, backend, max_images=5, sessions=accounts)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)

        async def ask(command, payload, read):
            writer.write(frame(command, payload))
            return await read(reader)

        try:
            assert await ask(LOGIN, login_payload("bea", "bea-password"), read_u32_block) == b"[true,false]"
            first, _glb = await ask(IMAGE, image_payload(photo_bytes[:2]), read_reconstruction)
            refused = await ask(IMAGE, image_payload(photo_bytes[1:]), read_reconstruction)
            await asyncio.to_thread(lifecycle.delete, [first])  # what `vggt-results delete` does
            gone = await ask(GET_GLB, first.encode(), read_u32_block)
            second, glb = await ask(IMAGE, image_payload(photo_bytes[1:]), read_reconstruction)  # room again
            return first, refused, gone, second, glb
        finally:
            writer.close()
            await server.close()
            accounts.close()

    try:
        first, refused, gone, second, glb = asyncio.run(asyncio.wait_for(scenario(), 120))
        assert first.endswith(".glb") and refused == ("", b"ERROR_QUOTA_EXCEEDED")
        assert gone == b"ERROR_HASH_NOT_FOUND"
        assert second.endswith(".glb") and glb[:4] == b"glTF" and stored(settings) == [second[:-4]]
    finally:
        db.dispose()
