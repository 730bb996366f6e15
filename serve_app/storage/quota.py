"""Per-user quotas on stored results: `storage.max_results_per_user` and `storage.max_bytes_per_user`.

Checked twice, with `storage.quota_policy` saying what happens over a limit:

* before the model runs (`QuotaGate.check_room`, called by the ingress):
  under `refuse`, a user already at a limit gets `ERROR_QUOTA_EXCEEDED`
  before any GPU time is spent. The new GLB's size is not known yet, so only
  a user at or over the byte limit is refused there. Under `evict_oldest`
  nothing is refused early: the store makes room.
* when the GLB is stored (`Quota.admit`, inside `GlbStore.save`'s
  transaction, before its row is inserted). The rule that keeps concurrent
  uploads of one user from overshooting: the user's row is locked first
  (PostgreSQL `SELECT ... FOR UPDATE`; SQLite: a write to that row takes the
  database's write lock) and held until the save commits or rolls back, so
  the saves of one user take turns between counting the user's results and
  inserting the new one, and each counts what the one before committed.
  `refuse`: a save that would pass a limit raises `QuotaExceededError`
  (nothing is stored). `evict_oldest`: the user's oldest results (by
  `created_at`, then id) are deleted in the same transaction until the new
  one fits, their files after the commit (`serve_app.storage.deletions`).
  A GLB larger than `max_bytes_per_user` on its own is refused either way.

A result's bytes are its GLB's and its stored predictions' (`file_size +
predictions_size`, `serve_app.storage.predictions`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from serve_app.config import StorageSettings
from serve_app.storage.blob_root import BlobRoot
from serve_app.storage.database import Database
from serve_app.storage.deletions import delete_rows
from serve_app.storage.models import GlbFile
from serve_app.storage.models import User as UserRow
from tcp_proxy.errors import QuotaExceededError


@dataclass(frozen=True)
class Usage:
    """What a user has stored: results and bytes."""

    results: int
    bytes: int


def stored_bytes():
    """A row's bytes in the storage root as an SQL expression: its GLB's and its stored predictions'."""
    return func.coalesce(GlbFile.file_size, 0) + func.coalesce(GlbFile.predictions_size, 0)


def usage(session: Session, user_id: int) -> Usage:
    count, total = session.execute(
        select(func.count(GlbFile.id), func.coalesce(func.sum(stored_bytes()), 0)).where(GlbFile.user_id == user_id)
    ).one()
    return Usage(int(count), int(total))


def lock_user(session: Session, user_id: int) -> bool:
    """Hold the user's row until `session`'s transaction ends (other lockers wait); False if there is none."""
    if session.get_bind().dialect.name == "sqlite":
        # a write takes SQLite's one write lock now (not at commit), so counting and inserting take turns
        statement = text("UPDATE users SET id = id WHERE id = :user_id")
        return session.execute(statement, {"user_id": user_id}).rowcount == 1
    found = session.scalar(select(UserRow.id).where(UserRow.id == user_id).with_for_update())
    return found is not None


@dataclass(frozen=True)
class Quota:
    """The limits of one `storage` section (None: unlimited) and the policy over them."""

    max_results: int | None = None
    max_bytes: int | None = None
    policy: str = "refuse"  # or "evict_oldest"

    @classmethod
    def of(cls, storage: StorageSettings) -> Quota | None:
        """The quota the settings ask for, or None when neither limit is set."""
        if storage.max_results_per_user is None and storage.max_bytes_per_user is None:
            return None
        return cls(storage.max_results_per_user, storage.max_bytes_per_user, storage.quota_policy)

    def refusal(self, used: Usage, new_bytes: int = 0) -> str | None:
        """Why one more result of `new_bytes` does not fit beside `used`, or None when it does."""
        if self.max_results is not None and used.results + 1 > self.max_results:
            return f"{used.results} stored results, at most {self.max_results} allowed"
        needed = max(new_bytes, 1)  # a size not known yet (the early check): any GLB takes a byte at least
        if self.max_bytes is not None and used.bytes + needed > self.max_bytes:
            if used.bytes >= self.max_bytes:
                return f"{used.bytes} bytes stored, at most {self.max_bytes} allowed"
            return f"{used.bytes} bytes stored and {new_bytes} more would pass the {self.max_bytes} allowed"
        return None

    def admit(self, session: Session, root: BlobRoot, user_id: int, new_bytes: int) -> list[str]:
        """Make room for one result of `new_bytes` in `session`'s transaction (the user's row locked until it
        ends); raises QuotaExceededError when it cannot. The keys of files queued by evicting older results."""
        lock_user(session, user_id)  # an unknown user fails at the insert, as without a quota
        if self.max_bytes is not None and new_bytes > self.max_bytes:
            raise QuotaExceededError(
                f"a result of {new_bytes} bytes is over the {self.max_bytes} bytes allowed per user"
            )
        used = usage(session, user_id)
        why = self.refusal(used, new_bytes)
        if why is None:
            return []
        if self.policy != "evict_oldest":
            raise QuotaExceededError(f"quota exceeded: {why}")
        oldest = session.execute(
            select(GlbFile.id, GlbFile.file_path, stored_bytes())
            .where(GlbFile.user_id == user_id)
            .order_by(GlbFile.created_at, GlbFile.id)
        ).all()
        evicted = []
        for row_id, stored_path, size in oldest:
            if self.refusal(used, new_bytes) is None:
                break
            evicted.append((row_id, stored_path))
            used = Usage(used.results - 1, used.bytes - (size or 0))
        return delete_rows(session, root, evicted)


class QuotaGate:
    """The early check, before a reconstruction runs: refuses a user already at a limit (policy `refuse`)."""

    def __init__(self, db: Database, quota: Quota) -> None:
        self._db = db
        self._quota = quota

    @classmethod
    def open(cls, storage: StorageSettings) -> QuotaGate | None:
        """A gate on the settings' database, or None when nothing is refused early (no limit, or evicting)."""
        quota = Quota.of(storage)
        if quota is None or quota.policy != "refuse":
            return None
        return cls(Database(storage.database_url), quota)

    def check_room(self, user_id: int) -> None:
        """Raise QuotaExceededError when the user cannot store one more result."""
        with self._db.session() as session:
            why = self._quota.refusal(usage(session, user_id))
        if why is not None:
            raise QuotaExceededError(f"quota exceeded: {why}")

    def close(self) -> None:
        self._db.dispose()
