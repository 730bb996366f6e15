"""Remember what each GLB was computed from, so an identical upload can reuse it.

`glb_files.source_digest` is the result cache's key (sha256 of the upload's
bytes with the settings that shape the result; `serve_app.result_cache`),
indexed with the owner. Rows stored before have none and are never reused.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEX_NAME = "ix_glb_files_user_id_source_digest"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "source_digest" not in {column["name"] for column in inspector.get_columns("glb_files")}:
        op.add_column("glb_files", sa.Column("source_digest", sa.String(64)))
    if INDEX_NAME not in {index["name"] for index in inspector.get_indexes("glb_files")}:
        op.create_index(INDEX_NAME, "glb_files", ["user_id", "source_digest"])


def downgrade() -> None:
    op.drop_index(INDEX_NAME, table_name="glb_files")
    op.drop_column("glb_files", "source_digest")
