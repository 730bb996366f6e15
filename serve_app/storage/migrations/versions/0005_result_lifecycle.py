"""Deleting stored results: files queued for deletion, and the index expiry reads.

* `glb_deletions`: the storage key of each file whose last `glb_files` row
  was deleted, queued in the same transaction; the entry goes once the file
  is gone (`serve_app.storage.deletions`). A deletion interrupted between
  the row and the file leaves an entry, never a file nobody knows about.
* `ix_glb_files_created_at`: expiry takes the oldest results first, a batch
  at a time.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

INDEX_NAME = "ix_glb_files_created_at"


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "glb_deletions" not in set(inspector.get_table_names()):
        op.create_table(
            "glb_deletions",
            sa.Column("file_key", sa.String(512), primary_key=True),
            sa.Column("queued_at", sa.Float, nullable=False),
        )
    if INDEX_NAME not in {index["name"] for index in inspector.get_indexes("glb_files")}:
        op.create_index(INDEX_NAME, "glb_files", ["created_at"])


def downgrade() -> None:
    op.drop_index(INDEX_NAME, table_name="glb_files")
    op.drop_table("glb_deletions")
