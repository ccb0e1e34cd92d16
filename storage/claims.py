"""Claims and their photos: the queries the claim use cases (`services.claims`) need."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session, selectinload

from claims.lifecycle import ClaimState
from storage.tables import CLOSED_STATES, Claim, Photo


def get_with_history(session: Session, claim_id: str) -> Claim | None:
    """The claim with its photos and audit events, read fresh from the database (a retry after an
    optimistic-lock conflict must see the other writer's change, not this session's stale copy)."""
    return session.execute(
        select(Claim)
        .where(Claim.id == claim_id)
        .options(selectinload(Claim.photos), selectinload(Claim.events))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def state_of(session: Session, claim_id: str) -> str | None:
    """Only the claim's state (one column by primary key): what a waiting request re-reads."""
    return session.scalar(select(Claim.state).where(Claim.id == claim_id))


def customer_page(
    session: Session,
    customer_id: int,
    states: Iterable[str],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Claim]:
    """Up to `limit` of a customer's claims, newest first (then by id), strictly after the (created_at,
    id) key of the previous page's last claim; only `states` when any are given."""
    statement = select(Claim).where(Claim.customer_id == customer_id)
    wanted = list(states)
    if wanted:
        statement = statement.where(Claim.state.in_(wanted))
    if after is not None:
        created, claim_id = after
        statement = statement.where(
            or_(Claim.created_at < created, and_(Claim.created_at == created, Claim.id < claim_id))
        )
    statement = statement.order_by(Claim.created_at.desc(), Claim.id.desc()).limit(limit)
    return list(session.scalars(statement))


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


def load_for_update(session: Session, claim_id: str, *, with_hashes: bool = False) -> Claim | None:
    """The claim with its photos, row-locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite has no
    row locks) and read fresh, so two assessment workers serialise on it. `with_hashes`: the photos'
    perceptual hashes too, in one more statement (the integrity checks read them all; loaded
    lazily, each photo's would be a statement of its own)."""
    photos = selectinload(Claim.photos)
    return session.execute(
        select(Claim)
        .where(Claim.id == claim_id)
        .options(photos.selectinload(Photo.hashes) if with_hashes else photos)
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


# --------------------------------------------------------------------------------------------------
# One claim per parcel, repeat claimants


def open_claim_on_parcel(session: Session, customer_id: int, tracking_number: str) -> Claim | None:
    """The customer's open claim on this tracking number, if any (at most one: `ux_claims_open_parcel`)."""
    return session.scalars(
        select(Claim).where(
            Claim.customer_id == customer_id,
            Claim.tracking_number == tracking_number,
            Claim.state.not_in(CLOSED_STATES),
        )
    ).first()


@dataclass(frozen=True)
class ParcelClaim:
    id: str
    customer_id: int
    state: str
    paid: bool
    created_at: datetime


def _parcel_claims(statement: Select[str, int, str, datetime], session: Session) -> list[ParcelClaim]:
    return [
        ParcelClaim(id_, customer, state, state == ClaimState.PAYOUT_INSTRUCTED, created)
        for id_, customer, state, created in session.execute(statement).all()
    ]


_PARCEL_COLUMNS = (Claim.id, Claim.customer_id, Claim.state, Claim.created_at)


def other_claims_on_parcel(session: Session, tracking_number: str, claim_id: str) -> list[ParcelClaim]:
    """Every other claim on this tracking number, oldest first; `paid` when a payout was instructed."""
    return _parcel_claims(
        select(*_PARCEL_COLUMNS)
        .where(Claim.tracking_number == tracking_number, Claim.id != claim_id)
        .order_by(Claim.created_at, Claim.id),
        session,
    )


def customer_claims_since(session: Session, customer_id: int, since: datetime) -> list[ParcelClaim]:
    """The customer's claims filed at or after `since`, newest first (the repeat-claimant history)."""
    return _parcel_claims(
        select(*_PARCEL_COLUMNS)
        .where(Claim.customer_id == customer_id, Claim.created_at >= since)
        .order_by(Claim.created_at.desc(), Claim.id),
        session,
    )


def ids_on_parcel_in_state(session: Session, tracking_number: str, state: str) -> list[str]:
    """Ids of the claims on this tracking number in `state` (claims to re-check when a shipment arrives)."""
    return list(
        session.scalars(
            select(Claim.id).where(Claim.tracking_number == tracking_number, Claim.state == state)
        )
    )
