"""Browser logins and the jobs they start (the HTTP API, docs/HTTP_API.md).

* `web_sessions`: one row per browser login, keyed by the SHA-256 of its
  cookie token (the token itself is never stored), with the digest of its
  CSRF token, the password stamp at login and an absolute expiry
  (`serve_app.storage.web_sessions`).
* `web_jobs`: reconstructions and re-exports started over HTTP, with their
  state, result hash or error code, so any replica answers their status
  (`serve_app.storage.web_jobs`).

Times are Unix seconds (float), as in 0004.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "web_sessions" not in existing:
        op.create_table(
            "web_sessions",
            sa.Column("token_sha256", sa.String(64), primary_key=True),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
            sa.Column("password_stamp", sa.String(64), nullable=False),
            sa.Column("csrf_sha256", sa.String(64), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False, index=True),
        )
    if "web_jobs" not in existing:
        op.create_table(
            "web_jobs",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
            sa.Column("kind", sa.String(8), nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("hashed_name", sa.String(64)),
            sa.Column("point_count", sa.Integer),
            sa.Column("error", sa.String(64)),
            sa.Column("message", sa.String(255)),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False, index=True),
            sa.Index("ix_web_jobs_user_id_created_at", "user_id", "created_at"),
        )


def downgrade() -> None:
    for table in ("web_jobs", "web_sessions"):
        op.drop_table(table)
