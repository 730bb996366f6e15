"""Listing, deleting and expiring stored results, and deleting users, without the command line.

`ResultLifecycle(db, root)` is what `vggt-results` and `vggt-users delete`
call, and what the export replicas run on a timer (`ExpiryTimer`). Every
deletion goes rows first, then files (`serve_app.storage.deletions` says
why), so a deleted result's share link answers 404 and GET_GLB
`ERROR_HASH_NOT_FOUND` at once. Expiry (`storage.retention_days`) takes the
oldest results first, at most `limit` per call, each call one short
transaction, by creation time (results stored before dates were kept were
given the time of the upgrade that dated them, migration 0008). Stored
predictions (`serve_app.storage.predictions`) go with their result, and on
their own after `storage.predictions_ttl_s` (`expire_predictions`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from serve_app.config import StorageSettings
from serve_app.storage import predictions as stored_predictions
from serve_app.storage.blob_root import BlobRoot, settings_root
from serve_app.storage.database import Database
from serve_app.storage.deletions import delete_rows, finish_deletions
from serve_app.storage.hashes import normalize_hash
from serve_app.storage.models import (
    AddressSession,
    GlbFile,
    LoginAddress,
    LoginFailure,
    LoginLockout,
    utcnow,
)
from serve_app.storage.models import User as UserRow
from serve_app.storage.quota import lock_user

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500


@dataclass(frozen=True)
class StoredResult:
    """One `glb_files` row as the listing shows it."""

    hashed_name: str
    username: str | None  # None: no owner, or the owner is gone
    file_size: int
    created_at: datetime | None  # naive UTC
    original_name: str


@dataclass(frozen=True)
class Deletion:
    """What one call deleted: result hashes (or, dry run, would delete) and file keys."""

    hashes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


class UnknownResultsError(LookupError):
    """Hashes no row has; nothing was deleted."""


class ResultLifecycle:
    """Stored results of one database and storage root: list, delete, expire; users deleted with theirs."""

    def __init__(self, db: Database, root: BlobRoot) -> None:
        self._db = db
        self.root = root

    def list(self, username: str | None = None) -> list[StoredResult]:
        """Every result (or one user's), oldest first."""
        query = (
            select(GlbFile.hashed_name, UserRow.username, GlbFile.file_size, GlbFile.created_at, GlbFile.original_name)
            .outerjoin(UserRow, UserRow.id == GlbFile.user_id)
            .order_by(GlbFile.created_at, GlbFile.id)
        )
        if username is not None:
            query = query.where(UserRow.username == username)
        with self._db.session() as session:
            rows = session.execute(query).all()
        return [
            StoredResult(name, owner, size or 0, created, original or "")
            for name, owner, size, created, original in rows
        ]

    def delete(self, hashes: list[str]) -> Deletion:
        """Delete the results of `hashes` (rows, then files no other row references). Raises InvalidHashError
        for a malformed hash and UnknownResultsError naming those no row has; then nothing is deleted."""
        names = list(dict.fromkeys(normalize_hash(text) for text in hashes))
        with self._db.session() as session:
            rows = session.execute(
                select(GlbFile.id, GlbFile.file_path, GlbFile.hashed_name).where(GlbFile.hashed_name.in_(names))
            ).all()
            unknown = sorted(set(names) - {row.hashed_name for row in rows})
            if unknown:
                raise UnknownResultsError(f"no result with hash {', '.join(unknown)}")
            queued = delete_rows(session, self.root, [(row.id, row.file_path) for row in rows])
        return Deletion(names, finish_deletions(self._db, self.root, queued))

    def expire(self, older_than_days: int, *, dry_run: bool = False, limit: int = DEFAULT_BATCH) -> Deletion:
        """Delete at most `limit` results stored more than `older_than_days` ago, oldest first, and finish
        up to `limit` deletions an interruption left queued. `dry_run`: only say which results would go."""
        cutoff = utcnow() - timedelta(days=older_than_days)
        query = (
            select(GlbFile.id, GlbFile.file_path, GlbFile.hashed_name)
            .where(GlbFile.created_at < cutoff)
            .order_by(GlbFile.created_at, GlbFile.id)
            .limit(limit)
        )
        with self._db.session() as session:
            rows = session.execute(query).all()
            if dry_run:
                return Deletion([row.hashed_name for row in rows])
            queued = delete_rows(session, self.root, [(row.id, row.file_path) for row in rows])
        files = finish_deletions(self._db, self.root, queued)
        files += finish_deletions(self._db, self.root, limit=limit)  # left by an earlier interruption
        if rows:
            log.info("expired %d results stored before %s UTC", len(rows), f"{cutoff:%Y-%m-%d %H:%M}")
        return Deletion([row.hashed_name for row in rows], files)

    def expire_predictions(self, ttl_s: int, *, limit: int = DEFAULT_BATCH) -> list[str]:
        """Delete the stored predictions of at most `limit` results older than `ttl_s` (their GLBs stay);
        the keys of the files deleted."""
        files = stored_predictions.expire(self._db, self.root, ttl_s, limit=limit)
        if files:
            log.info("deleted the stored predictions of %d results older than %d s", len(files), ttl_s)
        return files

    def sweep(self, limit: int = DEFAULT_BATCH) -> list[str]:
        """Finish up to `limit` queued file deletions; the keys deleted."""
        return finish_deletions(self._db, self.root, limit=limit)

    def delete_user(self, username: str) -> Deletion | None:
        """Delete the user with their results (rows, then files), address sessions, known addresses and
        login throttle entries; None when there is no such user."""
        with self._db.session() as session:
            user_id = session.scalar(select(UserRow.id).where(UserRow.username == username))
            if user_id is None or not lock_user(session, user_id):  # a save of theirs finishes first
                return None
            rows = session.execute(
                select(GlbFile.id, GlbFile.file_path, GlbFile.hashed_name).where(GlbFile.user_id == user_id)
            ).all()
            queued = delete_rows(session, self.root, [(row.id, row.file_path) for row in rows])
            session.execute(delete(AddressSession).where(AddressSession.user_id == user_id))
            session.execute(delete(LoginAddress).where(LoginAddress.user_id == user_id))
            for table in (LoginFailure, LoginLockout):  # keyed by the username (stored usernames fit the key as is)
                session.execute(delete(table).where(table.key_kind == "user", table.key_value == username))
            session.execute(delete(UserRow).where(UserRow.id == user_id))
        log.info("deleted user %r with %d results", username, len(rows))
        return Deletion([row.hashed_name for row in rows], finish_deletions(self._db, self.root, queued))


class ExpiryTimer:
    """Applies `storage.retention_days` every `storage.expire_every_s` in a daemon thread (one batch of
    `storage.expire_batch` each time), and finishes deletions an interruption left queued."""

    def __init__(self, storage: StorageSettings) -> None:
        self._storage = storage
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="result-expiry", daemon=True)

    @classmethod
    def start(cls, storage: StorageSettings) -> ExpiryTimer:
        timer = cls(storage)
        timer._thread.start()
        return timer

    def run_once(self, lifecycle: ResultLifecycle) -> Deletion:
        """One bounded round: expire a batch (when a retention is set), finish a batch of queued deletions,
        then delete a batch of predictions older than `storage.predictions_ttl_s` (0: every stored one)."""
        batch = self._storage.expire_batch
        if self._storage.retention_days is None:
            done = Deletion([], lifecycle.sweep(batch))
        else:
            done = lifecycle.expire(self._storage.retention_days, limit=batch)
        done.files.extend(lifecycle.expire_predictions(self._storage.predictions_ttl_s, limit=batch))
        return done

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        db: Database | None = None
        try:
            while not self._stop.wait(self._storage.expire_every_s):
                try:
                    if db is None:
                        db = Database(self._storage.database_url)
                        db.upgrade()  # the timer may fire before the export stage's first save upgrades it
                    self.run_once(ResultLifecycle(db, settings_root(self._storage)))
                except Exception:
                    log.warning(
                        "result expiry failed; trying again in %.0f s", self._storage.expire_every_s, exc_info=True
                    )
        finally:
            if db is not None:
                db.dispose()
