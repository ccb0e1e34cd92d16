"""Database tables (SQLAlchemy 2). Migrations in `storage/migrations` create exactly these.

Money is stored exactly: NUMERIC on PostgreSQL and decimal text on SQLite (whose NUMERIC would
round-trip through a float); Python always sees `Decimal`, with 4 decimal places on both.

Constraints are named by a naming convention, so later (SQLite batch) migrations can refer to them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Money(TypeDecorator):
    """Exact decimals: NUMERIC(18, scale) where the database has it, decimal text on SQLite.

    Values are quantized to `scale` decimal places (ties away from zero, as PostgreSQL rounds)
    before they reach either database, so SQLite stores what PostgreSQL would; NaN, infinities and
    values beyond NUMERIC(18, scale) are refused with ValueError on both. Money uses scale 4;
    probabilities (a claim's confidence) use scale 6, the precision the policy decides at.
    """

    impl = Numeric(18, 4)
    cache_ok = True

    def __init__(self, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.quantum = Decimal(1).scaleb(-scale)
        self.limit = Decimal(10) ** (18 - scale)

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(18, self.scale, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be Decimal, got {type(value).__name__}")
        if not value.is_finite():
            raise ValueError(f"money must be finite, got {value}")
        if abs(value) < self.limit:
            value = value.quantize(self.quantum, rounding=ROUND_HALF_UP)
        if abs(value) >= self.limit:
            raise ValueError(f"value out of range for NUMERIC(18, {self.scale}): {value}")
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite drops the zone otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """An API user. Only a hash of the key is stored; the key itself is shown once, at creation."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # customer | adjuster | admin | integration | lead
    key_prefix: Mapped[str] = mapped_column(String(16), index=True)  # lookup without scanning
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the whole key
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PayoutInstruction(Base):
    """The finance system's outbox: one instruction per claim whose payout was instructed (an accepted
    offer or an adjuster's approval), written in the same transaction as that state change. The
    unique claim id makes a second instruction for one claim impossible, whatever retries and races
    happen. `paid_at`/`payment_ref` are filled once finance confirms the payment."""

    __tablename__ = "payout_instructions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    option: Mapped[str] = mapped_column(String(32))  # cash | reshipment | store_credit
    amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)  # none for a reshipment
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    payment_ref: Mapped[str | None] = mapped_column(String(100), nullable=True)
    paid_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)


class ClaimFeedback(Base):
    """The customer's rating (1-5) of how their claim was handled, given once after it was closed."""

    __tablename__ = "claim_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), unique=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


class WebhookEndpoint(Base):
    """A URL an integration registered to hear of every claim's status changes, with the secret its
    deliveries are signed with (kept readable: signing needs it; shown to the owner once)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(200), nullable=True)
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookMessage(Base):
    """The webhook outbox: one message per status change per endpoint, written in the transaction of
    the change (so a change is never announced unless it committed, nor committed unannounced), then
    delivered at least once by `services.webhooks`; its id is the `webhook-id` receivers dedupe on."""

    __tablename__ = "webhook_messages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    audit_event_id: Mapped[int] = mapped_column(ForeignKey("audit_events.id"), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(
        String(16), default="pending"
    )  # pending | delivered | failed | cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)

    event: Mapped[AuditEvent] = relationship()

    __table_args__ = (Index("ix_webhook_messages_due", "state", "next_attempt_at"),)


class WebhookAttempt(Base):
    """One try at delivering a message: the delivery log admins read."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("webhook_messages.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)


class ConsoleSession(Base):
    """A signed-in review console: the browser holds an opaque token, the server this row (only the
    token's SHA-256, so a database leak is no sign-in), with its expiry, its CSRF token and, once
    signed out, when it was revoked."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Claim(Base):
    __tablename__ = "claims"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    customer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    tracking_number: Mapped[str] = mapped_column(String(64), index=True)
    # The value a payout is computed on: the shipment's declared (insured) value once the shipment is
    # known, never more; the customer's own figure only while it is not (and then no fast lane).
    declared_value: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    # What the app sent as the declared value, if anything: recorded, never paid above the shipment's.
    claimed_value: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # When the customer can expect a decision (acknowledged at once, answered within the SLA).
    decision_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The latest assessment.
    assessment_count: Mapped[int] = mapped_column(Integer, default=0)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    policy_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claim_grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claim_probs: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    confidence: Mapped[Decimal | None] = mapped_column(Money(scale=6), nullable=True)
    # {"kind": "offer", "amount": "150.00", "currency": "CNY", "options": [...]}
    # or {"kind": "review", "reasons": ["low_confidence", ...]}
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    accepted_option: Mapped[str | None] = mapped_column(String(32), nullable=True)
    payout_amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    # Human review (see api/reviewing.py): deadlines set when the claim enters review, the adjuster
    # holding the case (a lease: one adjuster at a time, until it expires), who decided and when.
    entered_review_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    first_response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_holder_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A repeat claimant (same customer or same tracking number as another claim): look closer.
    watch: Mapped[bool] = mapped_column(Boolean(), default=False, server_default=false())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Optimistic locking: two writers changing one claim cannot both win.
    row_version: Mapped[int] = mapped_column(Integer, default=1)

    photos: Mapped[list[Photo]] = relationship(
        back_populates="claim", order_by="Photo.position", cascade="all, delete-orphan"
    )
    events: Mapped[list[AuditEvent]] = relationship(back_populates="claim", order_by="AuditEvent.id")

    __mapper_args__ = {"version_id_col": row_version}


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = (UniqueConstraint("claim_id", "position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    original_key: Mapped[str] = mapped_column(String(200))  # byte-for-byte upload
    derivative_key: Mapped[str] = mapped_column(String(200))  # served: re-encoded, no EXIF/GPS
    content_type: Mapped[str] = mapped_column(String(32))
    byte_size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Model output for this photo (latest assessment).
    grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grade_probs: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    heatmap_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # The model's damage map for this photo (a few dozen numbers): its heatmap is rendered from it on
    # first view and kept under `heatmap_key`, off the decision's path.
    damage_map: Mapped[list[list[float]] | None] = mapped_column(JSON, nullable=True)
    # From the upload, for the fraud checks (models.fingerprints): EXIF capture time (zone_known False:
    # the phone's local time read as UTC), the camera, and whether it looks like a screenshot.
    taken_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    taken_zone_known: Mapped[bool | None] = mapped_column(Boolean(), nullable=True)
    camera: Mapped[str | None] = mapped_column(String(120), nullable=True)
    screenshot: Mapped[bool] = mapped_column(Boolean(), default=False, server_default=false())
    # pHash of the photo's mirror image: looked up (a mirrored copy of a stored photo), never indexed.
    mirror_hash: Mapped[int | None] = mapped_column(BigInteger(), nullable=True)

    claim: Mapped[Claim] = relationship(back_populates="photos")
    hashes: Mapped[list[PhotoHash]] = relationship(
        back_populates="photo", order_by="PhotoHash.kind", cascade="all, delete-orphan"
    )

    @classmethod
    def from_stored(cls, stored: Any, *, position: int, created_at: datetime | None = None) -> Photo:
        """The row for a photo `services.photos.store_photo` has put in the object store (claim and
        customer are filled in when the photo joins its claim); `storage.photos.add_to_claim` adds
        it to its claim with its perceptual hashes."""
        taken = stored.taken
        photo = cls(
            id=new_id(),
            position=position,
            sha256=stored.sha256,
            original_key=stored.original_key,
            derivative_key=stored.derivative_key,
            content_type=stored.content_type,
            byte_size=stored.byte_size,
            width=stored.width,
            height=stored.height,
            created_at=created_at or utcnow(),
            taken_at=None if taken is None else taken.at,
            taken_zone_known=None if taken is None else taken.zone_known,
            camera=stored.camera,
            screenshot=stored.screenshot,
        )
        if stored.fingerprint is not None:
            photo.mirror_hash = stored.fingerprint.mirrored[0]
        return photo


def hash_segments(value: int) -> tuple[int, int, int, int]:
    """A 64-bit hash (signed or unsigned) as four 16-bit segments, most significant first: the keys of
    the multi-index look-up (two hashes within 7 bits agree within 1 bit on at least one segment)."""
    value &= (1 << 64) - 1
    return ((value >> 48) & 0xFFFF, (value >> 32) & 0xFFFF, (value >> 16) & 0xFFFF, value & 0xFFFF)


class PhotoHash(Base):
    """One perceptual hash of a stored photo (kind 0: the whole photo; 1-9: its crops, see
    `models.fingerprints.CROPS`), with its four 16-bit segments indexed for multi-index hashing:
    near-duplicates are found with four indexed IN look-ups, never a scan of every hash."""

    __tablename__ = "photo_hashes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    photo_id: Mapped[str] = mapped_column(ForeignKey("photos.id"), index=True)
    kind: Mapped[int] = mapped_column(Integer)
    value: Mapped[int] = mapped_column(BigInteger)
    s0: Mapped[int] = mapped_column(Integer)
    s1: Mapped[int] = mapped_column(Integer)
    s2: Mapped[int] = mapped_column(Integer)
    s3: Mapped[int] = mapped_column(Integer)

    photo: Mapped[Photo] = relationship(back_populates="hashes")

    # One index per segment holding (segment, kind, value): a look-up reads the index alone.
    __table_args__ = tuple(
        Index(f"ix_photo_hashes_{s}", s, "kind", "value") for s in ("s0", "s1", "s2", "s3")
    )

    @staticmethod
    def columns(kind: int, value: int) -> dict[str, int]:
        """The row's columns but the photo: the hash and its four indexed segments."""
        s0, s1, s2, s3 = hash_segments(value)
        return {"kind": kind, "value": value, "s0": s0, "s1": s1, "s2": s2, "s3": s3}


class Shipment(Base):
    """A parcel as the carrier's own systems know it (pushed by an integration user): its insured
    value is fixed when it is shipped, not when it is claimed."""

    __tablename__ = "shipments"

    tracking_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    sender_ref: Mapped[str | None] = mapped_column(String(120), nullable=True)
    recipient_ref: Mapped[str | None] = mapped_column(String(120), nullable=True)
    declared_value: Mapped[Decimal] = mapped_column(Money())
    currency: Mapped[str] = mapped_column(String(3))
    service: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # see claims.integrity.ShipmentStatus
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))  # "integration:4", "cli"


class AuditEvent(Base):
    """Append-only: every state change of a claim, who made it, and on what grounds.

    The ORM refuses updates and deletes (below); the migration adds database triggers that refuse
    them too, so not even a hand-written SQL statement rewrites history.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # "system", "customer:12", "adjuster:7"
    action: Mapped[str] = mapped_column(String(32))  # "transition", "note", ...
    from_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    policy_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    claim: Mapped[Claim] = relationship(back_populates="events")


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _audit_is_append_only(mapper, connection, target) -> None:
    raise PermissionError("the audit log is append-only")


class IdempotencyKey(Base):
    """A client's Idempotency-Key: the first request's fingerprint and, once done, its response."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))  # in_flight | done
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    claim_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The process holding an in-flight key ("host:pid:start"), so a retry can tell when it has died.
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ReviewDecision(Base):
    """An adjuster's decision on a claim in review, next to what the machine had said (model grade and
    probabilities at the time), so the label export can compare the two. Append-only by convention."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    adjuster_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    action: Mapped[str] = mapped_column(String(16))  # approve | adjust | deny | request_photos
    amount: Mapped[Decimal | None] = mapped_column(Money(), nullable=True)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # What the machine said when the adjuster decided.
    model_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_grade: Mapped[int | None] = mapped_column(Integer, nullable=True)
    model_probs: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)

    labels: Mapped[list[PhotoLabel]] = relationship(back_populates="decision", order_by="PhotoLabel.id")


class PhotoLabel(Base):
    """The adjuster's own damage grade for one photo, given with a decision: labels for retraining."""

    __tablename__ = "photo_labels"
    __table_args__ = (
        UniqueConstraint("decision_id", "photo_id"),
        CheckConstraint("grade >= 0 AND grade <= 3", name="grade_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("review_decisions.id"), index=True)
    photo_id: Mapped[str] = mapped_column(ForeignKey("photos.id"), index=True)
    grade: Mapped[int] = mapped_column(Integer)
    adjuster_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    decision: Mapped[ReviewDecision] = relationship(back_populates="labels")


class CaseNote(Base):
    """An adjuster's note on a case (staff only; customers never see notes). Also in the audit log."""

    __tablename__ = "case_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    text: Mapped[str] = mapped_column(Text)

    author: Mapped[User] = relationship()


class ModelEvent(Base):
    """Append-only: every change to the model registry's aliases (and every registration), who made
    it, why, and the promotion gate's table. Refused updates and deletes in the ORM (below) and in
    the database (triggers of migration 0003), like `AuditEvent`."""

    __tablename__ = "model_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # "admin:3", "cli:alice", "system"
    # register | promote | override | rollback | set_challenger
    action: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(64), index=True)
    previous_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


@event.listens_for(ModelEvent, "before_update")
@event.listens_for(ModelEvent, "before_delete")
def _model_events_are_append_only(mapper, connection, target) -> None:
    raise PermissionError("model events are append-only")


class ShadowPrediction(Base):
    """What the challenger would have decided on a claim, next to what the champion did (shadow
    mode: the challenger never decides). `agree`: the same decision kind and the same grade."""

    __tablename__ = "shadow_predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    champion_version: Mapped[str] = mapped_column(String(64))
    challenger_version: Mapped[str] = mapped_column(String(64), index=True)
    champion_probs: Mapped[list[float]] = mapped_column(JSON)
    challenger_probs: Mapped[list[float]] = mapped_column(JSON)
    champion_decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    challenger_decision: Mapped[dict[str, Any]] = mapped_column(JSON)
    agree: Mapped[bool] = mapped_column(Boolean())


Index("ix_claims_state_due", Claim.state, Claim.decision_due_at)

# States in which a claim is closed: one claim per customer and parcel may be open at a time (the
# database enforces it, so concurrent requests cannot both file one).
CLOSED_STATES = ("denied", "payout_instructed")
_OPEN = f"state NOT IN ({', '.join(repr(s) for s in CLOSED_STATES)})"
Index(
    "ux_claims_open_parcel",
    Claim.customer_id,
    Claim.tracking_number,
    unique=True,
    sqlite_where=text(_OPEN),
    postgresql_where=text(_OPEN),
)
