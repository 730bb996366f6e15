"""Add columns that older databases lack, and index glb_files.user_id.

Some earlier deployments created their tables before `is_public`,
`vip_expire_time`, `status` or the timestamps existed. Missing columns are
added with the defaults the service assumes (public: no, status: active).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX_NAME = "ix_glb_files_user_id"


def optional_columns() -> dict[str, list[sa.Column]]:
    """Columns an older database may lack, built fresh (a Column joins one table only).

    SQLite cannot add a column whose default is not a constant, so timestamps
    added here start as NULL for existing rows.
    """
    return {
        "users": [
            sa.Column("is_vip", sa.Boolean(), server_default=sa.false()),
            sa.Column("vip_expire_time", sa.DateTime()),
            sa.Column("status", sa.Integer(), server_default=sa.text("1")),
            sa.Column("created_at", sa.DateTime()),
            sa.Column("updated_at", sa.DateTime()),
        ],
        "glb_files": [
            sa.Column("original_name", sa.String(255)),
            sa.Column("file_size", sa.Integer()),
            sa.Column("created_at", sa.DateTime()),
            sa.Column("is_public", sa.Boolean(), server_default=sa.false()),
        ],
    }


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table, columns in optional_columns().items():
        present = {column["name"] for column in inspector.get_columns(table)}
        for column in columns:
            if column.name not in present:
                op.add_column(table, column)
    indexes = {index["name"] for index in inspector.get_indexes("glb_files")}
    if INDEX_NAME not in indexes:
        op.create_index(INDEX_NAME, "glb_files", ["user_id"])


def downgrade() -> None:
    op.drop_index(INDEX_NAME, table_name="glb_files")
