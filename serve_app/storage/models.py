"""SQLAlchemy models of the service's tables.

`users` and `glb_files` are the tables existing deployments already have:
their names and columns match the databases of earlier deployments
(`vggt_app.db`), so those keep working. Their times are naive UTC; columns
that an older database may hold as NULL are typed optional. The session,
login-throttle (migration 0004), pending file deletion (0005) and browser
session and job (0007) tables hold Unix seconds instead.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

STATUS_ACTIVE = 1
STATUS_DISABLED = 0


def utcnow() -> datetime:
    """Current time as naive UTC, the form stored in the database."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)  # scrypt string, or legacy plaintext
    is_vip: Mapped[bool | None] = mapped_column(Boolean, default=False)
    vip_expire_time: Mapped[datetime | None] = mapped_column(DateTime)  # None: VIP never expires
    status: Mapped[int | None] = mapped_column(Integer, default=STATUS_ACTIVE)  # 1 active, 0 disabled
    created_at: Mapped[datetime | None] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class GlbFile(Base):
    __tablename__ = "glb_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hashed_name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    original_name: Mapped[str | None] = mapped_column(String(255))
    file_path: Mapped[str] = mapped_column(String(512), nullable=False)  # relative to the storage root
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    file_size: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime | None] = mapped_column(DateTime, default=utcnow)
    is_public: Mapped[bool | None] = mapped_column(Boolean, default=False, server_default=false())
    source_digest: Mapped[str | None] = mapped_column(String(64))  # result cache key (serve_app.result_cache)
    # bytes of the stored predictions `<file_path stem>.npz` (migration 0006); None: none stored
    predictions_size: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_glb_files_user_id_source_digest", "user_id", "source_digest"),
        Index("ix_glb_files_created_at", "created_at"),  # expiry reads the oldest first (migration 0005)
    )


class GlbDeletion(Base):
    """A file whose last row is deleted, to be removed from the storage root (serve_app.storage.deletions).

    Queued in the transaction that deletes the row, removed once the file is gone: a process stopped
    in between leaves a queued file, which the consistency check accepts and the next sweep deletes.
    """

    __tablename__ = "glb_deletions"

    file_key: Mapped[str] = mapped_column(String(512), primary_key=True)  # relative to the storage root
    queued_at: Mapped[float] = mapped_column(Float, nullable=False)  # Unix time


class AddressSession(Base):
    """A client address bound to the user who last logged in from it, until `expires_at`."""

    __tablename__ = "address_sessions"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)  # Unix time of the LOGIN
    expires_at: Mapped[float] = mapped_column(Float, nullable=False, index=True)


class LoginFailure(Base):
    """One failed login, counted against a username or an address (`key_kind`: user | address)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_kind: Mapped[str] = mapped_column(String(8), nullable=False)
    key_value: Mapped[str] = mapped_column(String(255), nullable=False)
    failed_at: Mapped[float] = mapped_column(Float, nullable=False)

    __table_args__ = (Index("ix_login_failures_key", "key_kind", "key_value", "failed_at"),)


class LoginLockout(Base):
    """A username or address whose logins are refused until `blocked_until`."""

    __tablename__ = "login_lockouts"

    key_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    key_value: Mapped[str] = mapped_column(String(255), primary_key=True)
    blocked_until: Mapped[float] = mapped_column(Float, nullable=False)


class LoginAddress(Base):
    """An address the user logged in from successfully: their own username lockout does not apply there."""

    __tablename__ = "login_addresses"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_login_at: Mapped[float] = mapped_column(Float, nullable=False)


class WebSession(Base):
    """A browser's login (`serve_app.storage.web_sessions`): only digests of its cookie and CSRF token."""

    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    password_stamp: Mapped[str] = mapped_column(String(64), nullable=False)  # the password's at login
    csrf_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[float] = mapped_column(Float, nullable=False)  # Unix time
    expires_at: Mapped[float] = mapped_column(Float, nullable=False, index=True)


class WebJob(Base):
    """A reconstruction or re-export started from a browser, and where it stands (`serve_app.storage.web_jobs`)."""

    __tablename__ = "web_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 32 hex
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # photos | video | export
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # queued ... done | failed
    hashed_name: Mapped[str | None] = mapped_column(String(64))
    point_count: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[float] = mapped_column(Float, nullable=False)  # Unix time
    updated_at: Mapped[float] = mapped_column(Float, nullable=False, index=True)

    __table_args__ = (Index("ix_web_jobs_user_id_created_at", "user_id", "created_at"),)
