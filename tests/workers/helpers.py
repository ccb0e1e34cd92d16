"""Helpers for the worker tests: photos, a customer and a submitted claim, straight through storage."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal

import numpy as np
from PIL import Image
from sqlalchemy import select

from claims.lifecycle import Actor, ClaimState
from services.photos import store_photo
from storage.tables import AuditEvent, Claim, Photo, User
from storage.transitions import apply_transition
from services.context import Services


def jpeg(seed: int, size: tuple[int, int] = (96, 72)) -> bytes:
    """A small noisy JPEG whose colour depends on `seed` (so photos differ, and so do their grades)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3)
    pixels = np.clip(base + rng.normal(0, 20, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def add_customer(services: Services) -> int:
    with services.sessions() as session:
        user = User(
            name=f"customer-{uuid.uuid4().hex[:8]}", role="customer", key_prefix="test", key_hash="0" * 64
        )
        session.add(user)
        session.commit()
        return user.id


def submit_claim(
    services: Services,
    photos: list[bytes],
    *,
    declared_value: str = "100.00",
    currency: str = "CNY",
    customer_id: int | None = None,
) -> str:
    """A committed claim in `submitted` with its photos stored, as the API leaves it."""
    customer_id = customer_id or add_customer(services)
    with services.sessions() as session:
        claim = Claim(
            customer_id=customer_id,
            tracking_number="SF1234567890",
            declared_value=Decimal(declared_value),
            currency=currency,
        )
        for position, data in enumerate(photos):
            stored, _ = store_photo(services.store, data)
            claim.photos.append(Photo.from_stored(stored, position=position))
        session.add(claim)
        apply_transition(session, claim, ClaimState.SUBMITTED, Actor.CUSTOMER, user_id=customer_id)
        session.commit()
        return claim.id


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
