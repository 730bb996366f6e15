"""Give the results stored before dates were kept a creation time: the time of this upgrade.

`glb_files.created_at` is NULL in rows written before the column existed
(0002 added it without a value, as SQLite cannot add a computed default).
Expiry (`storage.retention_days`, `storage.predictions_ttl_s`) compares
creation times, so those rows were never expired. Their age is unknown:
deleting them at the next expiry round would remove results their owners
may have stored yesterday, so retention counts from this upgrade instead,
as for a result stored now. The service writes `created_at` on every row.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    results = sa.table("glb_files", sa.column("created_at", sa.DateTime))
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # naive UTC, as the service stores it
    op.execute(results.update().where(results.c.created_at.is_(None)).values(created_at=now))


def downgrade() -> None:
    """Nothing: a date given here cannot be told from one written when the result was stored."""
