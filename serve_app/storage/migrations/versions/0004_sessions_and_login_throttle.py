"""Sessions and login throttling move into the database.

They must outlive a process and be shared by every replica of the TCP
server (and by every node of a cluster):

* `address_sessions`: which user a client address acts as, until a fixed
  time after the LOGIN that made the binding (`serve_app.storage.sessions`).
* `login_failures` and `login_lockouts`: failed logins per username and per
  address, and the keys refused until a time (`serve_app.storage.throttle`).
* `login_addresses`: addresses a user has logged in from successfully; a
  username lockout does not apply there, so guessing from elsewhere cannot
  lock the owner out.

Times are Unix seconds (float): every process compares them to its own
wall clock, whatever the database's time zone handling.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "address_sessions" not in existing:
        op.create_table(
            "address_sessions",
            sa.Column("address", sa.String(64), primary_key=True),
            sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False, index=True),
        )
    if "login_failures" not in existing:
        op.create_table(
            "login_failures",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("key_kind", sa.String(8), nullable=False),
            sa.Column("key_value", sa.String(255), nullable=False),
            sa.Column("failed_at", sa.Float, nullable=False),
            sa.Index("ix_login_failures_key", "key_kind", "key_value", "failed_at"),
        )
    if "login_lockouts" not in existing:
        op.create_table(
            "login_lockouts",
            sa.Column("key_kind", sa.String(8), primary_key=True),
            sa.Column("key_value", sa.String(255), primary_key=True),
            sa.Column("blocked_until", sa.Float, nullable=False),
        )
    if "login_addresses" not in existing:
        op.create_table(
            "login_addresses",
            sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("address", sa.String(64), primary_key=True),
            sa.Column("last_login_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    for table in ("login_addresses", "login_lockouts", "login_failures", "address_sessions"):
        op.drop_table(table)
