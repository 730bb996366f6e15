"""Remember the size of the predictions stored beside each GLB.

`glb_files.predictions_size`: bytes of `out/<day>/<hash>.npz`, the model
outputs an export needs (`serve_app.storage.predictions`), so a result can
be exported again with other options without running the model. NULL: none
stored (older rows, re-exports, predictions expired or turned off).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if "predictions_size" not in {column["name"] for column in inspector.get_columns("glb_files")}:
        op.add_column("glb_files", sa.Column("predictions_size", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("glb_files", "predictions_size")
