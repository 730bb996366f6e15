"""ServeBackend without Ray: retries of a run that lost its replica, and stored results answered again.

The Ray side is a fake `StageRunner`; accounts and GLBs are the service's own
classes on a SQLite database in tmp_path. `ray` is unimportable throughout.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import sqlalchemy
from sqlalchemy.exc import SQLAlchemyError

from serve_app.accounts import Accounts
from serve_app.config import AppSettings
from serve_app.serve_backend import ServeBackend
from serve_app.stages import Reconstruction, Upload
from serve_app.storage import Database, GlbStore
from serve_app.storage.models import User as UserRow
from tcp_proxy.backend import User
from tcp_proxy.errors import BadImageError, HashNotFoundError, ServiceError, UnprocessableUploadError

ALICE = User(7, "alice", False)
BOB = User(8, "bob", False)
PHOTOS = [b"first photo", b"second photo"]
DELAY_S = 0.01


class RayActorError(Exception):
    """Stands in for Ray's error of a dead replica."""


class FakeRunner:
    """Runs as the stage deployments would: stores a GLB the way the export stage does.

    failures: what each run raises, in turn, once it has (or has not) stored its GLB; then runs succeed.
    """

    def __init__(self, store: GlbStore, failures: list[tuple[Exception, bool]] | None = None) -> None:
        self.store = store
        self.failures = list(failures or [])
        self.uploads: list[Upload] = []

    async def run(self, upload: Upload) -> Reconstruction:
        self.uploads.append(upload)
        error, stores = self.failures.pop(0) if self.failures else (None, True)
        result = None
        if stores:
            job = upload.job
            glb = f"glTF run {len(self.uploads)}".encode()
            stored = self.store.save(glb, job.user_id, job.original_name, source_digest=job.source_digest)
            result = Reconstruction(glb=glb, hashed_name=stored.hashed_name, timings={"export": 0.1})
        if error is not None:
            raise error
        return result

    def is_replica_lost(self, exc: BaseException) -> bool:
        return isinstance(exc, RayActorError)


class CountingMetrics:
    def __init__(self) -> None:
        self.cache_lookups: list[bool] = []
        self.retries = 0
        self.storage_errors: list[str] = []

    def record_cache_lookup(self, hit: bool) -> None:
        self.cache_lookups.append(hit)

    def record_retry(self) -> None:
        self.retries += 1

    def record_storage_error(self, operation: str) -> None:
        self.storage_errors.append(operation)


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The pauses the backend takes, taken as no pause at all."""
    taken: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds, *args, **kwargs):
        taken.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return taken


@pytest.fixture
def storage(tmp_path) -> dict[str, str]:
    storage = {"database_url": f"sqlite:///{tmp_path / 'app.db'}", "storage_root": str(tmp_path / "root")}
    db = Database(storage["database_url"])
    db.upgrade()
    with db.session() as session:
        session.add_all([UserRow(id=user.id, username=user.username, password_hash="x") for user in (ALICE, BOB)])
    db.dispose()
    return storage


@pytest.fixture
def store(storage):
    db = Database(storage["database_url"])
    yield GlbStore(db, storage["storage_root"])
    db.dispose()


def settings_of(storage: dict[str, str], reuse_results: bool = True, attempts: int = 3) -> AppSettings:
    return AppSettings.from_dict(
        {
            "storage": {**storage, "reuse_results": reuse_results},
            "pipeline": {"attempts": attempts, "retry_delay_s": DELAY_S},
        }
    )


def reconstruct(settings: AppSettings, runner: FakeRunner, *calls: User, metrics=None) -> list:
    """The result (or the exception) of `reconstruct_images(user, PHOTOS)` for each user in turn,
    then the backend's count of retries."""

    async def scenario():
        accounts = await Accounts.open(settings)
        backend = ServeBackend(accounts, runner, settings, metrics)
        outcomes = []
        try:
            for user in calls:
                try:
                    outcomes.append(await backend.reconstruct_images(user, PHOTOS))
                except Exception as exc:
                    outcomes.append(exc)
        finally:
            accounts.close()
        return outcomes, backend.retries

    outcomes, retries = asyncio.run(scenario())
    return [*outcomes, retries]


def rows_of(store: GlbStore, user: User) -> list[str]:
    return [info.hashed_name for info in store.list_for_user(user.id, 100)]


def test_a_run_that_lost_its_replica_runs_again_after_a_pause(storage, store, sleeps):
    lost = [(RayActorError("replica died"), False)]
    runner, metrics = FakeRunner(store, lost), CountingMetrics()
    result, retries = reconstruct(settings_of(storage, attempts=3), runner, ALICE, metrics=metrics)
    assert isinstance(result, Reconstruction) and result.glb == b"glTF run 2"
    assert len(runner.uploads) == 2 and sleeps == [DELAY_S]
    assert retries == metrics.retries == 1
    assert rows_of(store, ALICE) == [result.hashed_name]
    assert list(result.timings) == ["export", "pipeline"]
    assert {upload.job.source_digest for upload in runner.uploads} == {runner.uploads[0].job.source_digest}


def test_gives_up_after_the_configured_attempts(storage, store, sleeps):
    runner = FakeRunner(store, [(RayActorError(f"lost {n}"), False) for n in range(5)])
    error, retries = reconstruct(settings_of(storage, attempts=1), runner, ALICE)
    assert isinstance(error, RayActorError) and str(error) == "lost 0"  # the last attempt's error
    assert not isinstance(error, ServiceError)  # the server answers ERROR_INTERNAL
    assert len(runner.uploads) == 1 and sleeps == [] and retries == 0
    assert rows_of(store, ALICE) == []


def test_an_upload_that_lost_a_replica_twice_is_not_run_a_third_time(storage, store, sleeps):
    runner = FakeRunner(store, [(RayActorError(f"lost {n}"), False) for n in range(5)])
    error, again, by_bob, retries = reconstruct(settings_of(storage, attempts=3), runner, ALICE, ALICE, BOB)
    assert isinstance(error, UnprocessableUploadError) and error.code == "ERROR_UNPROCESSABLE_UPLOAD"
    assert isinstance(error.__cause__, RayActorError) and str(error.__cause__) == "lost 1"
    assert isinstance(again, UnprocessableUploadError) and isinstance(by_bob, UnprocessableUploadError)
    assert len(runner.uploads) == 2 and sleeps == [DELAY_S] and retries == 1  # sent again: never run
    assert rows_of(store, ALICE) == rows_of(store, BOB) == []


def test_a_second_lost_run_that_had_stored_its_glb_answers_that_glb(storage, store, sleeps):
    lost = [(RayActorError("died before storing"), False), (RayActorError("died after storing"), True)]
    runner = FakeRunner(store, lost)
    result, retries = reconstruct(settings_of(storage), runner, ALICE)
    assert result.glb == b"glTF run 2" and len(runner.uploads) == 2 and retries == 1
    assert rows_of(store, ALICE) == [result.hashed_name]


def test_lost_replicas_are_remembered_for_a_while_and_for_a_bounded_number_of_uploads():
    from serve_app.serve_backend import LostReplicas

    now = [0.0]
    lost = LostReplicas(memory_s=10.0, size=2, clock=lambda: now[0])
    assert lost.record("a") == 1 and lost.record("a") == 2 and lost.count("a") == 2
    now[0] = 5.0
    lost.record("b")
    now[0] = 10.0  # "a" forgotten, "b" still counts
    assert lost.count("a") == 0 and lost.count("b") == 1
    lost.record("c")
    lost.record("d")  # over the size: the oldest ("b") goes
    assert (lost.count("b"), lost.count("c"), lost.count("d")) == (0, 1, 1)


@pytest.mark.parametrize("error", [ValueError("a bug"), BadImageError("photo 2 cannot be decoded")])
def test_any_other_error_propagates_at_once(storage, store, sleeps, error):
    runner = FakeRunner(store, [(error, False)])
    raised, retries = reconstruct(settings_of(storage), runner, ALICE)
    assert raised is error
    assert len(runner.uploads) == 1 and sleeps == [] and retries == 0


def test_a_lost_run_that_had_stored_its_glb_answers_that_glb(storage, store, sleeps):
    runner = FakeRunner(store, [(RayActorError("died after storing"), True)])
    result, retries = reconstruct(settings_of(storage), runner, ALICE)
    assert result.glb == b"glTF run 1" and len(runner.uploads) == 1 and retries == 1
    assert rows_of(store, ALICE) == [result.hashed_name]  # no second row


def test_an_older_result_of_the_same_upload_is_not_taken_for_the_lost_run(storage, store, sleeps):
    runner = FakeRunner(store)
    first, _ = reconstruct(settings_of(storage, reuse_results=False), runner, ALICE)
    runner.failures = [(RayActorError("died before storing"), False)]
    second, retries = reconstruct(settings_of(storage, reuse_results=False), runner, ALICE)
    assert second.hashed_name != first.hashed_name and second.glb == b"glTF run 3"
    assert len(runner.uploads) == 3 and retries == 1
    assert sorted(rows_of(store, ALICE)) == sorted([first.hashed_name, second.hashed_name])


def test_the_same_upload_by_the_same_user_answers_the_stored_glb(storage, store, sleeps):
    runner, metrics = FakeRunner(store), CountingMetrics()
    first, again, by_bob, _ = reconstruct(settings_of(storage), runner, ALICE, ALICE, BOB, metrics=metrics)
    assert (again.hashed_name, again.glb) == (first.hashed_name, first.glb)
    assert list(again.timings) == ["cache"]
    assert by_bob.hashed_name != first.hashed_name  # users do not share results
    assert len(runner.uploads) == 2 and metrics.cache_lookups == [False, True, False]
    assert rows_of(store, ALICE) == [first.hashed_name]


def test_without_reuse_the_same_upload_runs_again(storage, store, sleeps):
    runner, metrics = FakeRunner(store), CountingMetrics()
    first, again, _ = reconstruct(settings_of(storage, reuse_results=False), runner, ALICE, ALICE, metrics=metrics)
    assert again.hashed_name != first.hashed_name and len(runner.uploads) == 2
    assert metrics.cache_lookups == []
    assert runner.uploads[0].job.source_digest == runner.uploads[1].job.source_digest  # stored for retries


def test_imports_without_ray():
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import serve_app.serve_backend\n"
        "assert not [m for m in sys.modules if m.startswith('ray.')]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_download_the_database_fails_is_counted_as_a_storage_read_error(storage, store):
    settings, metrics = settings_of(storage), CountingMetrics()
    stored = store.save(b"glTF stored", ALICE.id, "a.jpg")
    engine = sqlalchemy.create_engine(storage["database_url"])
    found, unknown = [], []

    async def scenario():
        accounts = await Accounts.open(settings)
        backend = ServeBackend(accounts, FakeRunner(store), settings, metrics)
        try:
            found.append(await backend.open_glb(stored.hashed_name))
            await found[0].close()
            with pytest.raises(HashNotFoundError):
                await backend.open_glb("0" * 64)  # an unknown hash is the client's mistake, not a storage error
            unknown.extend(metrics.storage_errors)
            with engine.begin() as connection:
                connection.execute(sqlalchemy.text("DROP TABLE glb_files"))
            with pytest.raises(SQLAlchemyError):
                await backend.open_glb(stored.hashed_name)
        finally:
            accounts.close()

    asyncio.run(scenario())
    engine.dispose()
    assert unknown == [] and metrics.storage_errors == ["read"]
