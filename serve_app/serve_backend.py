"""`ServeBackend`: the TCP server's `Backend` over the stages, run by a `StageRunner`.

LOGIN, GET_GLB and LIST go to `Accounts` in this process. A reconstruction
first looks for the same upload among the user's stored results
(`serve_app.result_cache`); if there is none, the runner runs the stages of
`serve_app.stages.STAGES` on it. In the application the runner is
`serve_app.deployments.stage_runner.HandleStageRunner`, which chains the
stage deployments' handles; this module imports no Ray, and tests give it
a runner of their own.

A video upload, spooled to a file local to the ingress replica by the TCP
server, travels as its bytes (`Upload.from_video_file` maps the file), never
as a path. A run whose stage replica died (the runner's `is_replica_lost`:
crash, OOM kill, node loss) is run again, up to `pipeline.attempts` times,
after a pause (`pipeline.retry_delay_s`, doubled each time) in which Serve
replaces the replica; if the failed run had already stored its GLB (a row
with the upload's key, made since the first attempt), that GLB is the
answer, so a retry never leaves a second row or file. Anything else
propagates at once: a `ServiceError` becomes its `ERROR_*` code, any other
error (or a replica lost on the last attempt) `ERROR_INTERNAL`.

An upload that loses a replica a second time (its key among those that lost
one in the last `LOST_REPLICA_MEMORY_S`, `LostReplicas`) is not run again, so
it runs at most twice whatever `pipeline.attempts` says:
its input is taken to be what kills the replica (a decoder or memory
blow-up), and it is answered `ERROR_UNPROCESSABLE_UPLOAD`, as is the same
upload sent again while that is remembered.

A user at their stored-results quota (`storage.max_results_per_user`,
`storage.max_bytes_per_user`, policy `refuse`) is answered
`ERROR_QUOTA_EXCEEDED` after the result cache is looked in and before any
stage runs (`serve_app.storage.quota.QuotaGate`); the store checks again,
atomically, when it saves the GLB.

Every upload's key is stored with its GLB (`Job.source_digest`), also when
reusing results is switched off (`storage.reuse_results`): the retry needs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from typing import Callable, Protocol, Sequence

import numpy as np
from sqlalchemy.exc import SQLAlchemyError

from serve_app.accounts import Accounts
from serve_app.config import AppSettings
from serve_app.result_cache import ResultCache
from serve_app.stages import Job, Reconstruction, Upload
from serve_app.storage.glb_download import FileDownload
from serve_app.storage.models import utcnow
from serve_app.storage.quota import QuotaGate
from tcp_proxy.backend import GlbInfo, User
from tcp_proxy.errors import UnprocessableUploadError

log = logging.getLogger(__name__)

LOST_REPLICA_MEMORY_S = 900.0  # how long an upload's lost replicas count: longer than a client's resends take
LOST_REPLICA_KEYS = 4096  # uploads remembered at most (64-hex keys: well under 1 MiB)


StageStarted = Callable[[str], None]  # called with a stage's name as it starts (a browser job's progress)


class StageRunner(Protocol):
    """Runs the stages of one reconstruction wherever they live."""

    async def run(self, upload: Upload, on_stage: StageStarted | None = None) -> Reconstruction:
        """The upload's reconstruction (stored by the export stage); raises what a stage raised.
        on_stage, when given, is called with each stage's name as the stage starts."""
        ...

    def is_replica_lost(self, exc: BaseException) -> bool:
        """Whether `exc` says the run lost the process it ran in, so running it again may succeed."""
        ...


class BackendMetrics(Protocol):
    def record_cache_lookup(self, hit: bool) -> None: ...

    def record_retry(self) -> None: ...

    def record_storage_error(self, operation: str) -> None: ...


class LostReplicas:
    """How many stage replicas each recent upload (by its key) has lost: bounded, entries expire."""

    def __init__(
        self,
        memory_s: float = LOST_REPLICA_MEMORY_S,
        size: int = LOST_REPLICA_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._memory_s = memory_s
        self._size = size
        self._clock = clock
        self._losses: OrderedDict[str, tuple[int, float]] = OrderedDict()  # key -> (losses, expiry), oldest first

    def count(self, key: str) -> int:
        """Replicas the upload `key` lost within the memory."""
        self._expire()
        return self._losses.get(key, (0, 0.0))[0]

    def record(self, key: str) -> int:
        """One more replica lost by `key`; the losses now counted."""
        losses = self.count(key) + 1
        self._losses.pop(key, None)
        self._losses[key] = (losses, self._clock() + self._memory_s)
        while len(self._losses) > self._size:
            self._losses.popitem(last=False)
        return losses

    def _expire(self) -> None:
        now = self._clock()
        while self._losses and next(iter(self._losses.values()))[1] <= now:
            self._losses.popitem(last=False)


class ServeBackend:
    """tcp_proxy.backend.Backend: accounts in this process, the stages through a `StageRunner`."""

    def __init__(
        self,
        accounts: Accounts,
        runner: StageRunner,
        settings: AppSettings,
        metrics: BackendMetrics | None = None,
    ) -> None:
        self._accounts = accounts
        self._runner = runner
        self._keys = ResultCache(settings)
        self._reuse = settings.storage.reuse_results
        self._retry = settings.pipeline
        self._metrics = metrics
        self._lost = LostReplicas()
        self._quota = QuotaGate.open(settings.storage)  # None: nothing to refuse before running
        self.retries = 0  # runs repeated because a stage replica died (for status)

    async def login(self, username: str, password: str, address: str) -> User | None:
        return await self._accounts.login(username, password, address)

    async def open_glb(self, hash_text: str) -> FileDownload:
        try:
            return await self._accounts.open_glb(hash_text)
        except (OSError, SQLAlchemyError):  # the storage root or the database failed (the storage-errors alert)
            if self._metrics is not None:
                self._metrics.record_storage_error("read")
            raise

    async def list_glbs(self, user: User, limit: int) -> list[GlbInfo]:
        return await self._accounts.list_glbs(user, limit)

    async def reconstruct_images(
        self, user: User, images: Sequence[bytes], on_stage: StageStarted | None = None
    ) -> Reconstruction:
        # arrays over the caller's buffers (views of the spooled upload): Ray ships them to the decode
        # replica through its object store without a copy in this process
        arrays = tuple(np.frombuffer(image, dtype=np.uint8) for image in images)
        return await self._reconstruct(Upload(Job(user.id, f"images:{len(arrays)}"), images=arrays), on_stage)

    async def reconstruct_video(
        self, user: User, video_path: str, on_stage: StageStarted | None = None
    ) -> Reconstruction:
        upload = Upload.from_video_file(Job(user.id, "video"), video_path)  # bytes, not the node-local path
        return await self._reconstruct(upload, on_stage)

    async def _reconstruct(self, upload: Upload, on_stage: StageStarted | None = None) -> Reconstruction:
        started = time.perf_counter()
        user_id = upload.job.user_id
        key = await asyncio.to_thread(self._keys.key, upload)
        if self._reuse and user_id is not None:
            stored = await self._accounts.stored_result(user_id, key)
            if self._metrics is not None:
                self._metrics.record_cache_lookup(stored is not None)
            if stored is not None:
                return dataclasses.replace(stored, timings={"cache": time.perf_counter() - started})
        if self._quota is not None and user_id is not None:
            await asyncio.to_thread(self._quota.check_room, user_id)  # before any GPU time is spent
        upload = dataclasses.replace(upload, job=dataclasses.replace(upload.job, source_digest=key))
        result = await self._run_with_retries(upload, key, on_stage)
        return dataclasses.replace(result, timings={**result.timings, "pipeline": time.perf_counter() - started})

    async def _run_with_retries(self, upload: Upload, key: str, on_stage: StageStarted | None = None) -> Reconstruction:
        """Run the stages; when the runner lost a stage replica, run them again (Serve routes to a healthy
        or restarted replica) unless this upload had lost one before, and unless the failed run had
        already stored its GLB: then that is the result."""
        first_started = utcnow()
        if self._lost.count(key) >= 2:
            raise UnprocessableUploadError("this upload lost a stage replica twice already; it is not run again")
        attempt = 1
        while True:
            try:
                if on_stage is None:  # the TCP path: runners of tests take the upload alone
                    return await self._runner.run(upload)
                return await self._runner.run(upload, on_stage)
            except Exception as exc:
                if not self._runner.is_replica_lost(exc):
                    raise
                if self._lost.record(key) >= 2:
                    return await self._stored_or_refused(upload, key, first_started, exc)
                if attempt >= self._retry.attempts:
                    raise
                log.warning("reconstruction attempt %d lost its replica (%s); retrying", attempt, type(exc).__name__)
                self.retries += 1
                if self._metrics is not None:
                    self._metrics.record_retry()
            await asyncio.sleep(self._retry.retry_delay_s * 2 ** (attempt - 1))
            stored = await self._stored_since(upload, key, first_started)
            if stored is not None:  # the replica died after storing: no second row, no second file
                return stored
            attempt += 1

    async def _stored_or_refused(self, upload: Upload, key: str, since, lost: Exception) -> Reconstruction:
        """After the upload's second lost replica: the GLB a failed run stored, else UnprocessableUploadError."""
        stored = await self._stored_since(upload, key, since)
        if stored is not None:
            return stored
        log.warning("reconstruction lost a stage replica again (%s); not run again", type(lost).__name__)
        raise UnprocessableUploadError("this upload lost a stage replica twice; it is not run again") from lost

    async def _stored_since(self, upload: Upload, key: str, since) -> Reconstruction | None:
        if upload.job.user_id is None:
            return None
        return await self._accounts.stored_result(upload.job.user_id, key, since=since)
