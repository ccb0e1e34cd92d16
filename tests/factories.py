"""Shared test factories: policies, users, photos and claims, built the way the service builds them.

One place for what many test modules need, so a change to a policy field or to how a claim is
stored is made once. Photos are real encoded images (Pillow), users real rows with real API keys,
claims committed through `apply_transition` so their audit trail is what the API would leave.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np
from PIL import Image

from api.security import create_user
from claims.lifecycle import Actor, ClaimState
from claims.policy import PolicyConfig
from services.context import Services
from services.photos import store_photo
from storage.tables import Claim, Photo, User
from storage.transitions import apply_transition

# --------------------------------------------------------------------------------------------------
# Policies

# Pays every grade and trusts any confidence: with the tiny test models, every claim under the CNY
# ceiling gets an offer (cash, reshipment, store credit), so offer flows are deterministic.
OFFER_ALL = PolicyConfig(
    version="test-offer-all",
    grade_fractions=(Decimal("0.1"), Decimal("0.2"), Decimal("0.5"), Decimal("1")),
    confidence_threshold=Decimal("0.000001"),
    fast_lane_grades=frozenset({0, 1, 2, 3}),
    fast_lane_ceiling={"CNY": Decimal("2000")},
)

# Pays every grade but trusts no confidence below 1: every claim of the tiny model goes to a person
# (low_confidence), and approve always has something to pay.
REVIEW_ALL = replace(OFFER_ALL, version="test-review-all", confidence_threshold=Decimal("1"))


def policy(**overrides: Any) -> PolicyConfig:
    """OFFER_ALL with some fields changed (a new version name unless one is given)."""
    overrides.setdefault("version", f"test-{uuid.uuid4().hex[:8]}")
    return replace(OFFER_ALL, **overrides)


def policy_toml(config: PolicyConfig) -> str:
    """`config` as a policy file (for processes that read CLAIMLANE_POLICY_FILE, such as a worker)."""
    fractions = ", ".join(f'"{f}"' for f in config.grade_fractions)
    grades = ", ".join(str(g) for g in sorted(config.fast_lane_grades))
    options = ", ".join(f'"{o}"' for o in config.options)
    lines = [
        f'version = "{config.version}"',
        f"grade_fractions = [{fractions}]",
        f'confidence_threshold = "{config.confidence_threshold}"',
        f"fast_lane_grades = [{grades}]",
        f"offer_valid_hours = {config.offer_valid_hours}",
        f'store_credit_bonus = "{config.store_credit_bonus}"',
        f"options = [{options}]",
        "[fast_lane_ceiling]",
        *(f'{code} = "{value}"' for code, value in config.fast_lane_ceiling.items()),
        "[coverage_limit]",
        *(f'{code} = "{value}"' for code, value in config.coverage_limit.items()),
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Photos


def jpeg_bytes(
    seed: int = 0,
    size: tuple[int, int] = (96, 72),
    base: tuple[int, int, int] | None = None,
    **save_args: Any,
) -> bytes:
    """A small noisy JPEG whose colour depends on `seed` (so photos differ, and so do their grades)."""
    rng = np.random.default_rng(seed)
    colour = np.array(base) if base is not None else rng.integers(0, 256, size=3)
    pixels = np.clip(colour + rng.normal(0, 20, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90, **save_args)
    return buf.getvalue()


def png_bytes(size: tuple[int, int] = (80, 80), color: tuple[int, int, int] = (10, 200, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def gif_bytes(size: tuple[int, int] = (80, 80)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="GIF")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------------
# Users and claims


def add_user(services: Services, role: str = "customer", name: str | None = None) -> tuple[User, str]:
    """A committed user of `role` and its API key (shown once, as the CLI would print it)."""
    with services.sessions() as session:
        user, key = create_user(session, name or f"{role}-{uuid.uuid4().hex[:8]}", role)
        session.commit()
        return user, key


def add_customer(services: Services) -> int:
    """A customer's id, for claims made straight through storage (no key needed)."""
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
    tracking_number: str = "SF1234567890",
) -> str:
    """A committed claim in `submitted` with its photos stored, as the API leaves it."""
    customer_id = customer_id or add_customer(services)
    with services.sessions() as session:
        claim = Claim(
            customer_id=customer_id,
            tracking_number=tracking_number,
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
