"""A user's stored results as the browser lists them (GET /api/results): LIST's rows, with what the page shows.

Each GLB row of the user, newest first, with whether its predictions are
still stored (a re-export is possible) and its point count where a browser
job made it (the `web_jobs` row that stored it; None for results made over
TCP, which keep no count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from serve_app.storage.database import Database
from serve_app.storage.models import GlbFile, WebJob


@dataclass(frozen=True)
class WebResult:
    hashed_name: str
    name: str
    size: int
    created_at: datetime | None  # naive UTC
    point_count: int | None
    predictions: bool


def results_of(db: Database, user_id: int, limit: int) -> list[WebResult]:
    """The user's results, newest first (ties: the later row first), at most `limit`."""
    counts = (
        select(WebJob.hashed_name, func.max(WebJob.point_count).label("point_count"))
        .where(WebJob.user_id == user_id, WebJob.state == "done", WebJob.hashed_name.is_not(None))
        .group_by(WebJob.hashed_name)
        .subquery()
    )
    query = (
        select(GlbFile, counts.c.point_count)
        .outerjoin(counts, counts.c.hashed_name == GlbFile.hashed_name)
        .where(GlbFile.user_id == user_id)
        .order_by(GlbFile.created_at.desc(), GlbFile.id.desc())
        .limit(max(0, limit))
    )
    with db.session() as session:
        return [
            WebResult(
                hashed_name=row.hashed_name,
                name=row.original_name or "",
                size=row.file_size or 0,
                created_at=row.created_at,
                point_count=point_count,
                predictions=row.predictions_size is not None,
            )
            for row, point_count in session.execute(query).all()
        ]


def predictions_stored(db: Database, user_id: int, hashed_name: str) -> bool | None:
    """None: `hashed_name` is no result of `user_id`; else whether its predictions are still stored."""
    if not isinstance(hashed_name, str) or len(hashed_name) > 64:
        return None
    with db.session() as session:
        size = session.execute(
            select(GlbFile.predictions_size).where(GlbFile.hashed_name == hashed_name, GlbFile.user_id == user_id)
        ).first()
    return None if size is None else size[0] is not None
