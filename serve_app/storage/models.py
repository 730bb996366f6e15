"""SQLAlchemy models of the two tables existing deployments already have.

Table and column names match the databases of earlier deployments
(`vggt_app.db`), so those keep working. Times are naive UTC. Columns that an
older database may hold as NULL are typed optional.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, false
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

    __table_args__ = (Index("ix_glb_files_user_id_source_digest", "user_id", "source_digest"),)
