"""Baseline: the users and glb_files tables of earlier deployments.

Databases created before Alembic already hold these tables, so each one is
created only when missing; such a database is then simply stamped.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "users" not in existing:
        op.create_table(
            "users",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("username", sa.String(80), nullable=False, unique=True),
            sa.Column("password_hash", sa.String(255), nullable=False),
            sa.Column("is_vip", sa.Boolean(), server_default=sa.false()),
            sa.Column("vip_expire_time", sa.DateTime()),
            sa.Column("status", sa.Integer(), server_default=sa.text("1")),
            sa.Column("created_at", sa.DateTime(), server_default=sa.func.current_timestamp()),
            sa.Column("updated_at", sa.DateTime(), server_default=sa.func.current_timestamp()),
        )
    if "glb_files" not in existing:
        op.create_table(
            "glb_files",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("hashed_name", sa.String(64), nullable=False, unique=True),
            sa.Column("original_name", sa.String(255)),
            sa.Column("file_path", sa.String(512), nullable=False),
            sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id")),
            sa.Column("file_size", sa.Integer()),
            sa.Column("created_at", sa.DateTime(), server_default=sa.func.current_timestamp()),
            sa.Column("is_public", sa.Boolean(), server_default=sa.false()),
        )


def downgrade() -> None:
    op.drop_table("glb_files")
    op.drop_table("users")
