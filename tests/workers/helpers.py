"""Helpers for the worker tests: photos, a customer and a submitted claim, straight through storage."""

from __future__ import annotations

from sqlalchemy import select

from services.context import Services
from storage.tables import AuditEvent, Claim
from tests.factories import add_customer, jpeg_bytes, submit_claim  # noqa: F401 (re-exported)


def jpeg(seed: int, size: tuple[int, int] = (96, 72)) -> bytes:
    """A small noisy JPEG whose colour depends on `seed` (see tests.factories.jpeg_bytes)."""
    return jpeg_bytes(seed, size)


def load_claim(services: Services, claim_id: str) -> Claim:
    with services.sessions() as session:
        claim = session.get(Claim, claim_id)
        assert claim is not None
        _ = claim.photos  # loaded before the session closes (expire_on_commit=False)
        return claim


def events(services: Services, claim_id: str) -> list[AuditEvent]:
    with services.sessions() as session:
        return list(
            session.scalars(select(AuditEvent).where(AuditEvent.claim_id == claim_id).order_by(AuditEvent.id))
        )


def moves(services: Services, claim_id: str) -> list[tuple[str | None, str | None]]:
    return [(e.from_state, e.to_state) for e in events(services, claim_id) if e.action == "transition"]
