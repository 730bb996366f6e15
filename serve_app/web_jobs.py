"""`WebJobRunner`: reconstructions and re-exports started from a browser, run as jobs on the TCP path's means.

The HTTP API (`serve_app.http.api`) streams a browser's upload here, in the
ingress replica that hosts the TCP server, as the TCP path receives an
IMAGE/VIDEO request: `begin` admits it from its Content-Length before a
byte of it is read (a slot of the server's own
`tcp_proxy.admission.Admission`: refused `ERROR_BUSY` exactly where an
IMAGE/VIDEO header would be, the same per-user and total caps, the same
wait bound, and its bytes count in the bytes in flight), `receive` writes
each piece to a file of the server's spool folder
(`serve_app.web_upload.MultipartUpload` checks each part as it arrives) and
`finish` starts the job and answers its id. The reconstruction is the same
`ServeBackend.reconstruct_images` / `reconstruct_video` call (result cache,
quota, retries) on the spooled photos or video. The slot is given back when
the upload is dropped (an error, `abort`, nothing received for
`upload_idle_s`) or the job ends, whatever happens. A re-export calls the
GlbExporter deployment's `reexport`; it takes a slot too (so it counts in
the caps) but never queues for the model.

Job states, stored in `web_jobs` at each change (`serve_app.storage.web_jobs`):

* queued: admitted, and the requests whose uploads completed before it and
  are still pending fill the inference capacity (one per running
  VGGTInference replica): it waits behind them;
* decoding / inferring / exporting: that stage of the pipeline runs it
  (the stage runner reports each stage as the previous one's output is
  ready);
* done (with the result's hash and point count) / failed (with the
  `ERROR_*` code and its message).

While a job runs, its replica touches its row every `HEARTBEAT_S`; a job
whose row is unchanged for `STALE_S` lost the replica running it (killed
outright) and is shown, and stored, as failed `ERROR_INTERNAL` by whichever
replica is asked about it.

`position` (its place among those waiting: 1 runs next) and
`estimated_wait_s` (that many reconstructions at the measured pace) are known only to the replica running the job and
only while it is queued; elsewhere they are null. This module imports no Ray.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from serve_app.export.options import ExportOptions
from serve_app.stages.reexport import PredictionsExpiredError, export_options
from serve_app.storage.web_jobs import JobRecord, WebJobs
from tcp_proxy.admission import Admission, Slot
from tcp_proxy.backend import Reconstruction, User
from serve_app.web_upload import MultipartUpload
from tcp_proxy.errors import BusyError, HashNotFoundError, ModelUnavailableError, PayloadTooLargeError, ServiceError
from tcp_proxy.spool import Spool
from tcp_proxy.upload_rules import may_send_video

log = logging.getLogger(__name__)

STAGE_STATES = {"decode": "decoding", "inference": "inferring", "export": "exporting"}
HEARTBEAT_S = 15.0  # a running job's row is touched this often
STALE_S = 4 * HEARTBEAT_S  # unchanged this long: its replica is gone (a few missed beats, not one slow write)
LOST_MESSAGE = "the server running this job stopped before it finished; send the upload again"
RUNNING_STATES = ("decoding", "inferring")  # a job in these waits in line while others fill the capacity
# upload and job ids start with the replica that holds them: "<replica>.<random or row id>"; the HTTP
# ingress routes their calls there (`serve_app.deployments.owner_router`)
OWNER_SEPARATOR = "."
Reexport = Callable[[int, str, dict], Awaitable[Reconstruction]]


class JobBackend(Protocol):
    """What the runner needs of `serve_app.serve_backend.ServeBackend`."""

    async def reconstruct_images(self, user: User, images: Sequence[Any], on_stage: Any = None) -> Reconstruction: ...

    async def reconstruct_video(self, user: User, video_path: str, on_stage: Any = None) -> Reconstruction: ...


class ResultCheck(Protocol):
    async def __call__(self, user_id: int, hashed_name: str) -> bool | None:
        """None: not the user's result; False: its predictions are gone; True: it can be exported again."""


@dataclass(frozen=True)
class JobLimits:
    max_images: int  # frames.max_images
    max_payload_bytes: int  # proxy.max_payload_bytes: an upload's files together
    require_vip_for_video: bool  # proxy.require_vip_for_video
    upload_idle_s: float  # an upload that sends nothing this long is dropped (its HTTP ingress replica is gone)


class UploadGoneError(ServiceError):
    """A piece of an upload that this replica is not receiving (dropped after an error or idle, or another
    replica's whose owner is gone)."""

    code = "ERROR_INCOMPLETE_REQUEST"


@dataclass
class Receiving:
    """An upload being received: whose, its admission slot, its parser and file, its idle timer."""

    user: User
    slot: Slot
    upload: MultipartUpload
    idle: asyncio.TimerHandle | None = None


@dataclass
class LiveJob:
    """A job this replica runs: its stored record, its admission slot, its stage now."""

    record: JobRecord
    slot: Slot
    state: str  # the stage it is in (queued is shown on top of it: `WebJobRunner._shown_state`)
    stored: str = ""  # the state last written to its row
    writing: asyncio.Task | None = field(default=None, repr=False)  # the latest write of its state
    task: asyncio.Task | None = field(default=None, repr=False)


class WebJobRunner:
    """Starts and follows the jobs of one ingress replica."""

    def __init__(
        self,
        jobs: WebJobs,
        backend: JobBackend,
        admission: Admission,
        limits: JobLimits,
        *,
        spool_dir: Callable[[], Path | None],
        reexport: Reexport | None = None,
        result_check: ResultCheck | None = None,
        export_defaults: ExportOptions | None = None,
        capacity: Callable[[], int] = lambda: 1,
        model_loaded: Callable[[], bool] = lambda: True,
        owner: str = "local",
    ) -> None:
        """spool_dir: the TCP server's upload folder; reexport: the GlbExporter's `reexport`;
        result_check: whether a hash is the user's and still has its predictions; capacity:
        reconstructions that run at once (the inference replicas running); model_loaded: false once
        the model is known not to load (uploads are then refused ERROR_MODEL_NOT_LOADED at once); owner:
        this replica's id, the start of its upload ids (no separator in it)."""
        if OWNER_SEPARATOR in owner:
            raise ValueError(f"an owner id has no {OWNER_SEPARATOR!r}")
        self._jobs = jobs
        self._backend = backend
        self._admission = admission
        self._limits = limits
        self._spool_dir = spool_dir
        self._reexport = reexport
        self._result_check = result_check
        self._export_defaults = export_defaults or ExportOptions()
        self._capacity = capacity
        self._model_loaded = model_loaded
        self._owner = owner
        self._receiving: dict[str, Receiving] = {}
        self._live: dict[str, LiveJob] = {}
        self._heartbeat: asyncio.Task | None = None

    # -- starting ----------------------------------------------------------------------------

    async def begin(self, user: User, size: int, boundary: str) -> str:
        """Admit an upload of `size` bytes (its Content-Length) for `user` before any of it is read, as an
        IMAGE/VIDEO header is; its upload id. Its pieces then go to `receive`, and `finish` starts the job.

        Raises the error an IMAGE/VIDEO request would get at its header."""
        if not self._model_loaded():
            raise ModelUnavailableError("the model is not loaded: reconstructions cannot run")
        if size > self._limits.max_payload_bytes:
            raise PayloadTooLargeError(f"uploads are limited to {self._limits.max_payload_bytes} bytes")
        folder = self._spool_dir()
        if folder is None:
            raise ServiceError("no spool folder")
        slot = self._admit(user, size)
        try:
            spool = Spool(folder, ".upload")
        except BaseException:
            slot.release()
            raise
        video_allowed = may_send_video(user, self._limits.require_vip_for_video)
        upload = MultipartUpload(boundary, size, spool, max_images=self._limits.max_images, video_allowed=video_allowed)
        upload_id = self._owned_id(secrets.token_hex(16))
        self._receiving[upload_id] = Receiving(user, slot, upload)
        self._keep_alive(upload_id)
        return upload_id

    async def receive(self, upload_id: str, piece: bytes) -> None:
        """The next piece of the upload's body; on any error the upload is dropped (slot and file)."""
        receiving = self._receiving_now(upload_id)
        self._keep_alive(upload_id)
        try:
            await receiving.upload.feed(piece)
        except BaseException:
            self.abort(upload_id)
            raise

    async def finish(self, upload_id: str) -> str:
        """The upload's body is whole: start its reconstruction; its job id."""
        receiving = self._receiving_now(upload_id)
        self._forget(upload_id)
        user, slot, upload = receiving.user, receiving.slot, receiving.upload
        try:
            path = await upload.finish()
            kind = upload.kind or "photos"
            record = await asyncio.to_thread(self._jobs.create, user.id, kind)
            if kind == "video":
                run = lambda on_stage: self._backend.reconstruct_video(user, path, on_stage=on_stage)
            else:
                photos = upload.spool.map_parts(upload.sizes)
                run = lambda on_stage: self._backend.reconstruct_images(user, photos, on_stage=on_stage)
        except BaseException:
            slot.release()
            upload.spool.discard()
            raise
        slot.uploaded()  # the upload is complete: it waits for the backend from now on
        self._start(LiveJob(record, slot, "decoding"), run, upload.spool)
        return self._owned_id(record.id)

    def abort(self, upload_id: str) -> None:
        """Drop an upload under way: its admission slot and its file (nothing if it is not here)."""
        receiving = self._forget(upload_id)
        if receiving is not None:
            receiving.slot.release()
            receiving.upload.spool.discard()

    def _receiving_now(self, upload_id: str) -> Receiving:
        receiving = self._receiving.get(upload_id)
        if receiving is None:
            raise UploadGoneError("this upload is no longer being received; send it again")
        return receiving

    def _keep_alive(self, upload_id: str) -> None:
        """(Re)start the upload's idle timer: dropped if nothing arrives for `upload_idle_s`."""
        receiving = self._receiving[upload_id]
        if receiving.idle is not None:
            receiving.idle.cancel()
        loop = asyncio.get_running_loop()
        receiving.idle = loop.call_later(self._limits.upload_idle_s, self._idle, upload_id)

    def _idle(self, upload_id: str) -> None:
        log.warning("browser upload %s sent nothing for %.0f s: dropped", upload_id, self._limits.upload_idle_s)
        self.abort(upload_id)

    def _forget(self, upload_id: str) -> Receiving | None:
        receiving = self._receiving.pop(upload_id, None)
        if receiving is not None and receiving.idle is not None:
            receiving.idle.cancel()
        return receiving

    async def export(self, user: User, hashed_name: str, options: Any) -> str:
        """Start a re-export of the user's result `hashed_name` with `options` (JSON); its job id."""
        export_options(self._export_defaults, options, None)  # ERROR_BAD_OPTIONS before anything else
        if self._reexport is None:
            raise ServiceError("re-export is not available")
        if self._result_check is not None:
            found = await self._result_check(user.id, hashed_name)
            if found is None:
                raise HashNotFoundError("no such result of yours")
            if not found:
                raise PredictionsExpiredError("this result's predictions are no longer stored")
        slot = self._admit(user, 0)
        try:
            record = await asyncio.to_thread(self._jobs.create, user.id, "export")
        except BaseException:
            slot.release()
            raise
        reexport = self._reexport
        self._start(LiveJob(record, slot, "exporting"), lambda _on_stage: reexport(user.id, hashed_name, dict(options)), None)
        return self._owned_id(record.id)

    def _admit(self, user: User, size: int) -> Slot:
        slot = self._admission.admit(user.id, size)
        if slot is None:
            raise BusyError("the service is busy; try again shortly")
        return slot

    def _start(self, job: LiveJob, run: Callable[[Callable[[str], None]], Awaitable[Any]], spool: Spool | None) -> None:
        self._live[job.record.id] = job
        loop = asyncio.get_running_loop()
        job.task = loop.create_task(self._run(job, run, spool))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = loop.create_task(self._beat())

    async def _beat(self) -> None:
        """Touch the rows of the jobs under way every HEARTBEAT_S, while there are any."""
        while self._live:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await asyncio.to_thread(self._jobs.touch, list(self._live))
            except Exception:  # the database is down: the next beat tries again
                log.exception("could not touch the web jobs under way")

    # -- running ------------------------------------------------------------------------------

    async def _run(self, job: LiveJob, run: Callable[[Callable[[str], None]], Awaitable[Any]], spool: Spool | None) -> None:
        job_id, finished = job.record.id, False

        def on_stage(stage: str) -> None:
            job.state = STAGE_STATES.get(stage, job.state)
            self._store_shown(job)

        try:
            self._store_shown(job)
            result = await run(on_stage)
            finished = True
            await self._store(job_id, "done", hashed_name=result.hashed_name, point_count=int(result.point_count) or None)
        except asyncio.CancelledError:
            await self._store(job_id, "failed", error="ERROR_INTERNAL", message="the service stopped")
            raise
        except ServiceError as exc:
            await self._store(job_id, "failed", error=_code(exc), message=exc.message)
        except Exception:
            log.exception("web job %s failed", job_id)
            await self._store(job_id, "failed", error="ERROR_INTERNAL", message="internal error")
        finally:
            job.slot.release(finished=finished and job.record.kind != "export")
            if spool is not None:
                spool.discard()
            self._live.pop(job_id, None)

    def _store_shown(self, job: LiveJob) -> None:
        """Write the state the job shows now to its row (after the write before it), unless it is there."""
        state = self._shown_state(job)
        if state != job.stored:
            job.stored = state
            job.writing = asyncio.get_running_loop().create_task(self._store_after(job.writing, job.record.id, state))

    async def _store_after(self, before: asyncio.Task | None, job_id: str, state: str) -> None:
        if before is not None:
            await asyncio.gather(before, return_exceptions=True)
        await self._store(job_id, state)

    async def _store(self, job_id: str, state: str, **fields: Any) -> None:
        """Write the job's state now (a final one: after the state writes before it, so it is the last)."""
        if state in ("done", "failed"):
            live = self._live.get(job_id)
            if live is not None and live.writing is not None:
                await asyncio.gather(live.writing, return_exceptions=True)
        try:
            await asyncio.to_thread(self._jobs.update, job_id, state, **fields)
        except Exception:  # the database is down: the status reads stale, the job goes on
            log.exception("could not store the state of web job %s", job_id)

    # -- status ---------------------------------------------------------------------------------

    async def status(self, user: User, job_id: str) -> dict[str, Any] | None:
        """The job as GET /api/reconstructions/{id} answers it; None if it is not the user's."""
        row_id = record_id(job_id)
        live = self._live.get(row_id)
        if live is not None and live.record.user_id == user.id:
            position = self._position(live)
            state = self._shown_state(live)
            self._store_shown(live)  # queued -> decoding as those ahead finish: other replicas read the row
            return _status(job_id, live.record, state, position=position, wait_s=self._wait_s(position))
        record = await asyncio.to_thread(self._jobs.get, row_id, user.id)
        if record is not None and row_id not in self._live and self._jobs.stale(record, STALE_S):
            record = await asyncio.to_thread(self._jobs.fail_stale, record, STALE_S, "ERROR_INTERNAL", LOST_MESSAGE)
        return None if record is None else _status(job_id, record, record.state)

    def _owned_id(self, local_id: str) -> str:
        """An upload's or job's id as the API shows it: "<this replica>.<local id>", so that its later calls
        reach this replica (which alone holds the upload, or knows the job's place in the queue)."""
        return f"{self._owner}{OWNER_SEPARATOR}{local_id}"

    def _position(self, job: LiveJob) -> int | None:
        """The job's place among those waiting for capacity (1: it runs next), or None when it is not waiting."""
        if job.state not in RUNNING_STATES:
            return None
        ahead = self._admission.position(job.slot)
        waiting = None if ahead is None else ahead - max(1, self._capacity()) + 1
        return waiting if waiting is not None and waiting >= 1 else None

    def _shown_state(self, job: LiveJob) -> str:
        return "queued" if self._position(job) is not None else job.state

    def _wait_s(self, position: int | None) -> float | None:
        """Until the `position` requests that must finish first (as many as its place) have: at the pace."""
        return None if position is None else self._admission.estimate.wait_s(position)

    async def close(self) -> None:
        """Drop the uploads being received; cancel the jobs under way (their rows end failed); for shutdown."""
        for upload_id in list(self._receiving):
            self.abort(upload_id)
        tasks = [job.task for job in self._live.values() if job.task is not None]
        if self._heartbeat is not None:
            tasks.append(self._heartbeat)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def record_id(job_id: str) -> str:
    """The row id of a job id ("<owner>.<row id>")."""
    return job_id.rpartition(OWNER_SEPARATOR)[2]


def owner_of_id(some_id: str) -> str:
    """The replica id at the start of an upload or job id ("" when there is none)."""
    owner, separator, _ = some_id.partition(OWNER_SEPARATOR)
    return owner if separator else ""


def _status(job_id: str, record: JobRecord, state: str, *, position: int | None = None, wait_s: float | None = None) -> dict:
    done = state == "done"
    return {
        "id": job_id,
        "kind": record.kind,
        "state": state,
        "position": position,
        "estimated_wait_s": wait_s,
        "hash": record.hashed_name if done else None,
        "point_count": record.point_count if done else None,
        "error": record.error if state == "failed" else None,
        "message": record.message if state == "failed" else None,
    }


def _code(exc: ServiceError) -> str:
    code = getattr(exc, "code", "")
    return code if isinstance(code, str) and code.startswith("ERROR_") and len(code) <= 64 else "ERROR_INTERNAL"
