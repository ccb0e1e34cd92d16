"""Claims and their photos: the queries the claim use cases (`services.claims`) need."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from storage.tables import Claim, Photo


def get_with_history(session: Session, claim_id: str) -> Claim | None:
    """The claim with its photos and audit events, read fresh from the database (a retry after an
    optimistic-lock conflict must see the other writer's change, not this session's stale copy)."""
    return session.execute(
        select(Claim)
        .where(Claim.id == claim_id)
        .options(selectinload(Claim.photos), selectinload(Claim.events))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def photo_shas_in_use(session: Session, shas: Iterable[str]) -> set[str]:
    """Which of these photo contents a committed photo row refers to (content addressing)."""
    wanted = set(shas)
    if not wanted:
        return set()
    return set(session.scalars(select(Photo.sha256).where(Photo.sha256.in_(wanted))).all())


def photo_positions(session: Session, claim_id: str) -> list[tuple[str, int]]:
    """(photo id, position) of a claim's photos."""
    return [
        (pid, pos)
        for pid, pos in session.execute(
            select(Photo.id, Photo.position).where(Photo.claim_id == claim_id)
        ).all()
    ]


def load_for_update(session: Session, claim_id: str) -> Claim | None:
    """The claim with its photos, row-locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has no
    row locks) and read fresh, so two assessment workers serialise on it."""
    return session.execute(
        select(Claim)
        .where(Claim.id == claim_id)
        .options(selectinload(Claim.photos))
        .with_for_update(of=Claim)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def stale_claim_ids(
    session: Session, states: Iterable[str], changed_before: datetime, limit: int
) -> list[str]:
    """Ids of claims in one of `states` whose state has not changed since `changed_before`, oldest
    first, at most `limit` (the sweeper re-enqueues their assessment)."""
    return list(
        session.scalars(
            select(Claim.id)
            .where(Claim.state.in_(list(states)), Claim.state_changed_at < changed_before)
            .order_by(Claim.state_changed_at)
            .limit(limit)
        )
    )
