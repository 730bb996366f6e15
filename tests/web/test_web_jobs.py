"""`WebJobRunner`: the TCP path's admission and limits, job states from stage progress, stored in a real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from serve_app.storage.web_jobs import WebJobs
from multipart_body import boundary_of, multipart, upload
from serve_app.web_jobs import JobLimits, WebJobRunner, owner_of_id, record_id
from tcp_proxy.admission import Admission
from tcp_proxy.backend import Reconstruction, User
from tcp_proxy.errors import (
    BadImageError,
    BusyError,
    HashNotFoundError,
    PayloadTooLargeError,
    ServiceError,
    TooManyImagesError,
    VipRequiredError,
)

LIMITS = JobLimits(max_images=3, max_payload_bytes=1000, require_vip_for_video=True, upload_idle_s=60.0)
HASH = "a" * 64


class SteppedBackend:
    """A backend whose runs go through the stages one step at a time, when the test says."""

    def __init__(self) -> None:
        self.step = asyncio.Condition()
        self.allowed = 0
        self.videos: list[bytes] = []
        self.fail: ServiceError | None = None

    async def advance(self, steps: int = 1) -> None:
        async with self.step:
            self.allowed += steps
            self.step.notify_all()

    async def _stages(self, on_stage) -> Reconstruction:
        for n, stage in enumerate(("decode", "inference", "export")):
            async with self.step:
                await self.step.wait_for(lambda n=n: self.allowed > n)
            on_stage(stage)
        async with self.step:
            await self.step.wait_for(lambda: self.allowed > 3)
        if self.fail is not None:
            raise self.fail
        return Reconstruction(glb=b"glTF", hashed_name=HASH, point_count=42)

    async def reconstruct_images(self, user, images, on_stage=None):
        assert all(bytes(image) for image in images)
        return await self._stages(on_stage)

    async def reconstruct_video(self, user, video_path, on_stage=None):
        self.videos.append(Path(video_path).read_bytes())
        return await self._stages(on_stage)


ALICE, VIP = User(1, "alice", False), User(2, "vip", True)


@pytest.fixture
def runner_parts(db, alice, bob, tmp_path):
    jobs = WebJobs(db)
    admission = Admission(max_pending=4, max_per_user=2, max_wait_s=60.0)
    return jobs, admission, tmp_path


def make_runner(parts, backend, **kwargs) -> WebJobRunner:
    jobs, admission, spool = parts
    return WebJobRunner(jobs, backend, admission, LIMITS, spool_dir=lambda: spool, **kwargs)


async def settled(runner, user, job_id, state):
    """The job's status once it shows `state` (the runner's tasks run meanwhile)."""
    for _ in range(20_000):  # a loaded machine may take a while; a wrong state never arrives
        status = await runner.status(user, job_id)
        if status["state"] == state:
            return status
        await asyncio.sleep(0.005)
    raise AssertionError(f"job never reached {state}: {status}")


def test_a_job_goes_through_the_stages_and_its_row_follows(runner_parts):
    jobs, admission, _ = runner_parts

    async def scenario():
        backend = SteppedBackend()
        runner = make_runner(runner_parts, backend)
        job_id = await upload(runner, ALICE, "photos", [b"p1", b"p2"])
        owner, _, row_id = job_id.partition(".")
        assert (owner, len(row_id)) == ("local", 32) and admission.pending == 1 and admission.queued == 1
        seen = [(await settled(runner, ALICE, job_id, "decoding"))["state"]]
        for state in ("decoding", "inferring", "exporting"):
            await backend.advance()
            seen.append((await settled(runner, ALICE, job_id, state))["state"])
        await backend.advance()
        done = await settled(runner, ALICE, job_id, "done")
        assert done == {
            "id": job_id, "kind": "photos", "state": "done", "position": None, "estimated_wait_s": None,
            "hash": HASH, "point_count": 42, "error": None, "message": None,
        }
        assert admission.pending == 0  # the slot is back
        assert jobs.get(row_id, ALICE.id).state == "done"  # any replica reads this
        elsewhere = make_runner(runner_parts, backend)  # another replica, asked about it: from the row
        assert (await elsewhere.status(ALICE, job_id))["state"] == "done"
        assert await runner.status(VIP, job_id) is None  # another user's job is unknown to them

    asyncio.run(scenario())


def test_a_failed_job_keeps_its_error_code_and_gives_its_slot_back(runner_parts):
    _, admission, spool = runner_parts

    async def scenario():
        backend = SteppedBackend()
        backend.fail = BadImageError("image 2 of 2 cannot be decoded")
        runner = make_runner(runner_parts, backend)
        job_id = await upload(runner, VIP, "video", [b"video bytes"])
        await backend.advance(4)
        failed = await settled(runner, VIP, job_id, "failed")
        assert (failed["error"], failed["message"], failed["hash"]) == ("ERROR_BAD_IMAGE", "image 2 of 2 cannot be decoded", None)
        assert backend.videos == [b"video bytes"]  # spooled like a VIDEO upload
        assert admission.pending == 0
        assert not [path for path in spool.iterdir() if path.name.startswith("upload-")]  # the spool file is gone

    asyncio.run(scenario())


def test_uploads_are_refused_as_over_tcp_before_any_job_exists(runner_parts, db):
    _, admission, spool = runner_parts

    async def scenario():
        runner = make_runner(runner_parts, SteppedBackend())
        with pytest.raises(TooManyImagesError):
            await upload(runner, ALICE, "photos", [b"x"] * 4)  # over max_images 3
        await upload(runner, ALICE, "photos", [b"x"] * 3)  # at
        with pytest.raises(VipRequiredError):
            await upload(runner, ALICE, "video", [b"v"])
        assert admission.pending == 1  # the refused uploads gave their slots back
        body, headers = multipart([("photos", b"x")])
        filler = LIMITS.max_payload_bytes - len(body)
        at, at_headers = multipart([("photos", b"x" * (filler + 1))])  # the body is exactly the limit
        assert len(at) == LIMITS.max_payload_bytes
        with pytest.raises(PayloadTooLargeError):
            await runner.begin(VIP, len(at) + 1, boundary_of(at_headers))  # one over, from the header alone
        assert admission.pending == 1
        await upload(runner, VIP, "photos", [b"x" * (filler + 1)])  # at
        await upload(runner, ALICE, "photos", [b"x"])  # alice's second: her cap of 2
        with pytest.raises(BusyError):
            await runner.begin(ALICE, len(body), boundary_of(headers))  # the admission's per-user cap, before the body
        assert admission.pending == 3
        assert len([path for path in spool.iterdir() if path.name.startswith("upload-")]) == 3  # the admitted ones only

    asyncio.run(scenario())


def spooled(folder) -> list:
    return [path for path in folder.iterdir() if path.name.startswith("upload-")]


def test_an_upload_takes_its_slot_at_begin_and_gives_it_back_when_dropped(runner_parts):
    _, admission, spool = runner_parts

    async def scenario():
        limits = JobLimits(max_images=3, max_payload_bytes=1000, require_vip_for_video=True, upload_idle_s=1.0)
        jobs, _, folder = runner_parts
        runner = WebJobRunner(jobs, SteppedBackend(), admission, limits, spool_dir=lambda: folder, owner="r1")
        body, headers = multipart([("photos", b"p" * 10)])
        aborted = await runner.begin(ALICE, len(body), boundary_of(headers))
        assert aborted.startswith("r1.") and admission.pending == 1  # counted before a byte of it arrived
        await runner.receive(aborted, body[:20])
        runner.abort(aborted)  # the browser went away
        assert admission.pending == 0 and not spooled(spool)
        with pytest.raises(ServiceError) as raised:
            await runner.receive(aborted, body[20:])
        assert raised.value.code == "ERROR_INCOMPLETE_REQUEST"
        short = await runner.begin(ALICE, len(body), boundary_of(headers))
        await runner.receive(short, body[:-1])
        with pytest.raises(ServiceError) as raised:
            await runner.finish(short)  # one byte short of its Content-Length
        assert raised.value.code == "ERROR_INCOMPLETE_REQUEST" and admission.pending == 0
        longer = await runner.begin(ALICE, len(body) - 1, boundary_of(headers))
        with pytest.raises(PayloadTooLargeError):
            await runner.receive(longer, body)
        assert admission.pending == 0 and not spooled(spool)
        idle = await runner.begin(ALICE, len(body), boundary_of(headers))
        first_due = runner._receiving[idle].idle.when()
        await asyncio.sleep(0.05)
        await runner.receive(idle, body[:5])
        assert runner._receiving[idle].idle.when() > first_due  # a piece restarts the idle timer
        for _ in range(2000):  # then silent: dropped once upload_idle_s (1 s) passed
            if admission.pending == 0:
                break
            await asyncio.sleep(0.01)
        assert admission.pending == 0 and not spooled(spool)  # dropped once silent for upload_idle_s
        with pytest.raises(ValueError):
            WebJobRunner(jobs, SteppedBackend(), admission, limits, spool_dir=lambda: folder, owner="a.b")

    asyncio.run(scenario())


@pytest.mark.parametrize("capacity", [1, 2])
def test_a_job_beyond_the_capacity_is_queued_first_in_line(runner_parts, capacity):
    async def scenario():
        backend = SteppedBackend()
        runner = make_runner(runner_parts, backend, capacity=lambda: capacity)
        users = [ALICE, VIP, VIP][: capacity + 1]
        jobs = [await upload(runner, user, "photos", [bytes([n])]) for n, user in enumerate(users)]
        statuses = [await runner.status(user, job) for user, job in zip(users, jobs)]
        assert [s["state"] for s in statuses] == ["decoding"] * capacity + ["queued"]  # `capacity` run at once
        assert [s["position"] for s in statuses] == [None] * capacity + [1]  # 1: it runs next
        await backend.advance(4)
        for user, job in zip(users, jobs):
            await settled(runner, user, job, "done")

    asyncio.run(scenario())


def test_export_options_are_checked_and_the_result_must_be_the_users(runner_parts):
    async def scenario():
        calls = []

        async def reexport(user_id, hashed_name, options):
            calls.append((user_id, hashed_name, options))
            return Reconstruction(glb=b"glTF", hashed_name="b" * 64, point_count=7)

        async def result_check(user_id, hashed_name):
            return {HASH: True, "c" * 64: False}.get(hashed_name)

        runner = make_runner(runner_parts, SteppedBackend(), reexport=reexport, result_check=result_check)
        for bad in ({"conf_percentile": 101}, {"source": "x"}, {"max_points": 0}, {"quantize": False}, [1]):
            with pytest.raises(ServiceError) as raised:
                await runner.export(ALICE, HASH, bad)
            assert raised.value.code == "ERROR_BAD_OPTIONS"
        with pytest.raises(HashNotFoundError):
            await runner.export(ALICE, "d" * 64, {})
        with pytest.raises(ServiceError) as raised:
            await runner.export(ALICE, "c" * 64, {})
        assert raised.value.code == "ERROR_PREDICTIONS_EXPIRED"
        options = {"conf_percentile": 50, "show_cameras": True, "frame": None, "max_points": 1000}
        job_id = await runner.export(ALICE, HASH, options)
        done = await settled(runner, ALICE, job_id, "done")
        assert (done["kind"], done["hash"], done["point_count"]) == ("export", "b" * 64, 7)
        assert calls == [(ALICE.id, HASH, options)]

    asyncio.run(scenario())


def test_uploads_are_refused_at_once_while_the_model_is_known_not_loaded(runner_parts):
    _, admission, _ = runner_parts
    loaded = [False]

    async def scenario():
        runner = make_runner(runner_parts, SteppedBackend(), model_loaded=lambda: loaded[0])
        with pytest.raises(ServiceError) as raised:
            await upload(runner, ALICE, "photos", [b"x"])
        assert raised.value.code == "ERROR_MODEL_NOT_LOADED" and admission.pending == 0
        loaded[0] = True
        assert await upload(runner, ALICE, "photos", [b"x"])

    asyncio.run(scenario())


def test_a_job_whose_replica_died_ends_failed_and_a_running_one_is_kept_alive(runner_parts, monkeypatch):
    jobs, _, _ = runner_parts
    monkeypatch.setattr("serve_app.web_jobs.HEARTBEAT_S", 0.05)
    monkeypatch.setattr("serve_app.web_jobs.STALE_S", 1.0)

    async def scenario():
        orphan = await asyncio.to_thread(jobs.create, ALICE.id, "photos")  # its replica was killed outright
        await asyncio.to_thread(jobs.update, orphan.id, "inferring")
        backend = SteppedBackend()
        runner = make_runner(runner_parts, backend)  # the replica asked about it later
        running = await upload(runner, ALICE, "photos", [b"p"])
        await settled(runner, ALICE, running, "decoding")
        await asyncio.sleep(2.0)  # twice STALE_S: only beats keep a row fresh now
        lost = await runner.status(ALICE, orphan.id)
        assert (lost["state"], lost["error"]) == ("failed", "ERROR_INTERNAL")
        assert jobs.get(orphan.id, ALICE.id).state == "failed"  # stored: every replica now says so
        record = await asyncio.to_thread(jobs.get, record_id(running), ALICE.id)
        assert record.state == "decoding" and not jobs.stale(record, 1.0)  # its own replica beats
        await backend.advance(4)
        assert (await settled(runner, ALICE, running, "done"))["hash"] == HASH
        await runner.close()

    asyncio.run(scenario())


def test_ids_name_their_replica():
    assert (owner_of_id("r1.abc"), record_id("r1.abc")) == ("r1", "abc")
    assert (owner_of_id("abc"), record_id("abc")) == ("", "abc")  # no owner: any replica, the row's id
    assert owner_of_id("") == ""
