"""Shadow predictions: the challenger's would-be decisions, one row per assessment graded by both models."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.tables import ShadowPrediction


def predictions(
    session: Session, *, since: datetime | None = None, challenger_version: str | None = None
) -> list[ShadowPrediction]:
    """The rows recorded at or after `since`, of one challenger version if given; oldest first."""
    stmt = select(ShadowPrediction).order_by(ShadowPrediction.at, ShadowPrediction.id)
    if since is not None:
        stmt = stmt.where(ShadowPrediction.at >= since)
    if challenger_version is not None:
        stmt = stmt.where(ShadowPrediction.challenger_version == challenger_version)
    return list(session.scalars(stmt))
