"""Shared test factories: policies, users, photos and claims, built the way the service builds them.

One place for what many test modules need, so a change to a policy field or to how a claim is
stored is made once. Photos are real encoded images (Pillow), users real rows with real API keys,
claims committed through `apply_transition` so their audit trail is what the API would leave.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageDraw, ImageOps
from sqlalchemy.exc import IntegrityError

from api.security import create_user
from claims.lifecycle import Actor, ClaimState
from claims.policy import PolicyConfig
from services.context import Services
from services.photos import prepare_photo, store_original
from storage import photos as photo_rows
from storage import shipments as shipment_rows
from storage.tables import Claim, User, utcnow
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


def add_shipment(
    services: Services,
    tracking_number: str,
    *,
    declared_value: str = "100.00",
    currency: str = "CNY",
    status: str = "delivered",
    delivered_at: datetime | None = None,
    only_if_missing: bool = False,
) -> None:
    """A committed shipment record (delivered a day ago by default), as the carrier's feed sends it."""
    with services.sessions() as session:
        if only_if_missing and shipment_rows.get(session, tracking_number) is not None:
            return
        now = datetime.now(UTC)
        delivered = delivered_at or (now - timedelta(days=1) if status == "delivered" else None)
        values = {
            "declared_value": Decimal(declared_value),
            "currency": currency,
            "status": status,
            "delivered_at": delivered,
            "shipped_at": (delivered or now) - timedelta(days=2),
            "sender_ref": None,
            "recipient_ref": None,
            "service": None,
        }
        shipment_rows.upsert(session, tracking_number, values, actor="test", now=now)
        try:
            session.commit()
        except IntegrityError:  # a concurrent caller created it first
            if not only_if_missing:
                raise


def submit_claim(
    services: Services,
    photos: list[bytes],
    *,
    declared_value: str = "100.00",
    currency: str = "CNY",
    customer_id: int | None = None,
    tracking_number: str | None = None,
    shipment: bool = True,
) -> str:
    """A committed claim in `submitted` with its photos stored, as the API leaves it: on its own
    tracking number (with a delivered shipment at the declared value) unless one is given."""
    customer_id = customer_id or add_customer(services)
    tracking_number = tracking_number or f"SF{uuid.uuid4().hex[:10].upper()}"
    if shipment:
        add_shipment(
            services, tracking_number, declared_value=declared_value, currency=currency, only_if_missing=True
        )
    with services.sessions() as session:
        claim = Claim(
            customer_id=customer_id,
            tracking_number=tracking_number,
            declared_value=Decimal(declared_value),
            currency=currency,
        )
        stored = []
        for data in photos:
            prepared = prepare_photo(data, model_size=224)  # as an upload is: the original only
            store_original(services.store, prepared)
            stored.append(prepared.photo)
        session.add(claim)
        apply_transition(session, claim, ClaimState.SUBMITTED, Actor.CUSTOMER, user_id=customer_id)
        photo_rows.add_to_claim(session, claim, stored, first_position=0, now=utcnow())
        session.commit()
        return claim.id


# --------------------------------------------------------------------------------------------------
# Photos for the fraud checks: distinct scenes, camera EXIF, and the edits a fraudster makes


def scene_photo(
    seed: int, size: tuple[int, int] = (800, 600), exif: bytes | None = None, fmt: str = "JPEG"
) -> bytes:
    """A photo-like scene (shaded background, a few boxes and blobs) that differs in structure from
    seed to seed, as two real photos do: noise-only images would all hash alike at low frequencies."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0.7, 1.2, h)[:, None, None] * np.linspace(1.1, 0.8, w)[None, :, None]
    base = rng.integers(60, 200, size=3) * ramp + rng.normal(0, 6, size=(h, w, 3))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(7):
        x0, y0 = int(rng.integers(0, w * 3 // 4)), int(rng.integers(0, h * 3 // 4))
        x1, y1 = x0 + int(rng.integers(w // 8, w // 2)), y0 + int(rng.integers(h // 8, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)([x0, y0, x1, y1], fill=colour)
    buf = io.BytesIO()
    args: dict[str, Any] = {"quality": 92} if fmt == "JPEG" else {}
    if exif is not None:
        args["exif"] = exif
    img.save(buf, format=fmt, **args)
    return buf.getvalue()


def camera_exif(
    taken: datetime | None = None,
    *,
    offset: str | None = "+08:00",
    make: str = "Apple",
    model: str = "iPhone 15",
) -> bytes:
    """EXIF as a phone camera writes it: Make, Model and (optionally) DateTimeOriginal with its offset."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = make
    exif[ExifTags.Base.Model] = model
    if taken is not None:
        ifd = exif.get_ifd(ExifTags.IFD.Exif)
        ifd[ExifTags.Base.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S")
        if offset is not None:
            ifd[ExifTags.Base.OffsetTimeOriginal] = offset
    return exif.tobytes()


def _edit(data: bytes, change: Any, quality: int = 90) -> bytes:
    img = change(Image.open(io.BytesIO(data)).convert("RGB"))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def reencoded(data: bytes) -> bytes:
    """The same photo saved again at JPEG quality 60 (as a messenger app does)."""
    return _edit(data, lambda img: img, quality=60)


def halved(data: bytes) -> bytes:
    return _edit(data, lambda img: img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS))


def cropped(data: bytes, fraction: float = 0.1) -> bytes:
    """`fraction` cut off the top and left (the photo keeps 90% of each side)."""
    return _edit(
        data,
        lambda img: img.crop(
            (round(img.width * fraction), round(img.height * fraction), img.width, img.height)
        ),
    )


def mirrored(data: bytes) -> bytes:
    return _edit(data, ImageOps.mirror)


def screenshot_png(seed: int = 0, size: tuple[int, int] = (1170, 2532)) -> bytes:
    """A phone screenshot of a photo: the screen's exact size, a flat status bar, no camera EXIF."""
    screen = Image.new("RGB", size, (250, 250, 250))
    shot = Image.open(io.BytesIO(scene_photo(seed, (size[0], size[0] * 3 // 4))))
    screen.paste(shot, (0, size[1] // 4))
    draw = ImageDraw.Draw(screen)
    draw.text((40, 30), "9:41", fill=(0, 0, 0))
    buf = io.BytesIO()
    screen.save(buf, format="PNG")
    return buf.getvalue()
