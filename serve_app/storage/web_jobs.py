"""Jobs started from a browser, in the database: kind, state, result or error, per user.

A row is made when the HTTP API accepts an upload or a re-export
(`serve_app.web_jobs.WebJobRunner`), updated at each state change by the
ingress replica running it, and read by whichever replica answers a status
request, so a status outlives the replica that answered the upload. A user
sees only their own jobs: a job id of another user reads as unknown. Rows
older than `keep_s` are swept now and then.

The replica running a job touches its row now and then (`touch`); a job
whose row has not changed for a while (`fail_stale`) lost its replica (killed
outright, its node gone) and is ended failed, so no page waits for ever.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, update

from serve_app.storage.database import Database
from serve_app.storage.models import WebJob

KINDS = ("photos", "video", "export")
STATES = ("queued", "decoding", "inferring", "exporting", "done", "failed")
FINAL_STATES = ("done", "failed")
KEEP_S = 7 * 86400.0  # jobs are forgotten this long after their last change
PURGE_EVERY = 100  # jobs made by this process between sweeps
MESSAGE_CHARS = 255
JOB_ID_CHARS = 32


@dataclass(frozen=True)
class JobRecord:
    """One job as stored."""

    id: str
    user_id: int
    kind: str
    state: str
    hashed_name: str | None = None
    point_count: int | None = None
    error: str | None = None
    message: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class WebJobs:
    """The `web_jobs` table of one database."""

    def __init__(self, db: Database, keep_s: float = KEEP_S, clock: Callable[[], float] = time.time):
        self._db = db
        self._keep_s = keep_s
        self._clock = clock
        self._since_purge = 0

    def create(self, user_id: int, kind: str) -> JobRecord:
        """A new job of `user_id`, state queued, with a fresh random id (32 hex)."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        now = self._clock()
        record = JobRecord(secrets.token_hex(JOB_ID_CHARS // 2), user_id, kind, "queued", created_at=now, updated_at=now)
        with self._db.session() as session:
            session.add(WebJob(**record.__dict__))
        self._since_purge += 1
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            self.purge()
        return record

    def update(
        self,
        job_id: str,
        state: str,
        *,
        hashed_name: str | None = None,
        point_count: int | None = None,
        error: str | None = None,
        message: str | None = None,
    ) -> None:
        """Move the job to `state` with what it now knows; a final state is never left (one conditional
        UPDATE: writers racing each other cannot undo it)."""
        if state not in STATES:
            raise ValueError(f"unknown job state {state!r}")
        values = {
            "state": state,
            "updated_at": self._clock(),
            "hashed_name": hashed_name,
            "point_count": point_count,
            "error": error,
            "message": None if message is None else message[:MESSAGE_CHARS],
        }
        with self._db.session() as session:
            session.execute(
                update(WebJob).where(WebJob.id == job_id, WebJob.state.not_in(FINAL_STATES)).values(**values)
            )

    def touch(self, job_ids: list[str]) -> None:
        """Mark these unfinished jobs as still followed by their replica (their `updated_at` is now)."""
        if job_ids:
            with self._db.session() as session:
                session.execute(
                    update(WebJob)
                    .where(WebJob.id.in_(job_ids), WebJob.state.not_in(FINAL_STATES))
                    .values(updated_at=self._clock())
                )

    def stale(self, record: JobRecord, stale_s: float) -> bool:
        """Whether `record` is unfinished and unchanged for longer than `stale_s`."""
        return not record.final and record.updated_at < self._clock() - stale_s

    def fail_stale(self, record: JobRecord, stale_s: float, error: str, message: str) -> JobRecord | None:
        """End the job failed if it is still unfinished and unchanged for longer than `stale_s` (one
        conditional UPDATE: a replica touching it meanwhile wins); the job as stored then."""
        with self._db.session() as session:
            session.execute(
                update(WebJob)
                .where(
                    WebJob.id == record.id,
                    WebJob.state.not_in(FINAL_STATES),
                    WebJob.updated_at < self._clock() - stale_s,
                )
                .values(state="failed", error=error, message=message[:MESSAGE_CHARS], updated_at=self._clock())
            )
        return self.get(record.id, record.user_id)

    def get(self, job_id: str, user_id: int) -> JobRecord | None:
        """The job `job_id` if it is `user_id`'s, else None (unknown, malformed or another user's)."""
        if not isinstance(job_id, str) or len(job_id) != JOB_ID_CHARS:
            return None
        with self._db.session() as session:
            row = session.get(WebJob, job_id)
            if row is None or row.user_id != user_id:
                return None
            return _record(row)

    def purge(self) -> None:
        """Delete jobs unchanged for `keep_s`."""
        with self._db.session() as session:
            session.execute(delete(WebJob).where(WebJob.updated_at <= self._clock() - self._keep_s))


def _record(row: WebJob) -> JobRecord:
    return JobRecord(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        state=row.state,
        hashed_name=row.hashed_name,
        point_count=row.point_count,
        error=row.error,
        message=row.message,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
