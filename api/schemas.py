"""Request and response models of the public API (Pydantic v2). OpenAPI (/docs) is built from these.

Money is always a decimal string in JSON ("150.00"), never a number: a JSON number is a binary
float to most clients, and a payout must survive the round trip to the last minor unit.
Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from claims.lifecycle import ClaimState

MoneyStr = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+(\.[0-9]+)?$",
        examples=["150.00"],
        description="A decimal amount as a string (never a JSON number).",
    ),
]


def _refuse_nul(value: Any, where: str = "") -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where or 'text'} must not contain a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_nul(item, f"{where}[{index}]")
    return value


class _Model(BaseModel):
    """Every request and response model: unknown fields refused, and no NUL in any text (PostgreSQL
    refuses it, so it would be a 500 there and stored as is on SQLite)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        return _refuse_nul(data)


# --------------------------------------------------------------------------------------------------
# Errors


class ErrorBody(_Model):
    code: str = Field(
        description="A stable machine-readable code, e.g. `validation_error`, `not_found`.",
        examples=["validation_error"],
    )
    message: str = Field(
        description="What went wrong, for a person.",
        examples=["invalid request: declared_value: amount must not be negative, got '-5'"],
    )
    details: Any = Field(
        None,
        description="Optional structured context; for validation errors a list "
        "of {field, location, message, type}.",
    )


class ErrorResponse(_Model):
    """Every error the API answers has this shape."""

    error: ErrorBody


# --------------------------------------------------------------------------------------------------
# Claims


class ClaimAccepted(_Model):
    """The 202 answer to a new claim: stored, and queued for assessment."""

    id: str = Field(description="The claim id.")
    status: ClaimState = Field(description="Always `submitted` here.")
    url: str = Field(
        description="Where to follow the claim (also in the Location header).",
        examples=["/v1/claims/0b0e6c1e-3f7b-4c8e-9f1e-2a7d3c9b8f10"],
    )
    expected_decision_at: datetime | None = Field(
        None, description="When the customer can expect a decision (the service answers within an hour)."
    )


class PhotoView(_Model):
    id: str
    position: int = Field(description="1 for the first photo of the claim, in upload order.")
    url: str = Field(description="The served copy of the photo: a re-encoded JPEG without any metadata.")
    grade: int | None = Field(
        None, description="Damage grade of this photo (0 none .. 3 severe), once assessed."
    )
    grade_probs: list[float] | None = Field(
        None, description="Probability of each grade 0..3, once assessed."
    )


class OptionView(_Model):
    kind: Literal["cash", "reshipment", "store_credit"]
    amount: MoneyStr | None = Field(None, description="None for a reshipment (the item, not money).")
    description: str


class OfferView(_Model):
    """An instant offer the customer may accept (choosing one option) or decline (an adjuster reviews)."""

    kind: Literal["offer"] = "offer"
    amount: MoneyStr
    currency: str
    options: list[OptionView]
    expires_at: datetime | None
    explanation: str


class RetakeView(_Model):
    """A photo the photo gate could not use, and what to change when taking it again."""

    position: int = Field(description="1-based, in the order the photos were sent.")
    photo_id: str
    problem: Literal["not_a_parcel", "dark", "blurred", "too_far"]
    message: str = Field(examples=["Photo 2 is too dark: retake it in better light."])


class ReviewView(_Model):
    """The claim went to a human adjuster, and why. `retake` names the photos to take again
    (reason `photo_unusable`); add them with `POST /v1/claims/{id}/photos`."""

    kind: Literal["review"] = "review"
    reasons: list[str]
    explanation: str
    retake: list[RetakeView] = Field(default_factory=list)


class ApprovedView(_Model):
    """An adjuster approved the claim; the amount is paid in cash (`payout_amount`, `accepted_option`)."""

    kind: Literal["approved"] = "approved"
    amount: MoneyStr
    currency: str
    reason: str | None = Field(
        None, description="Why the adjuster paid another amount than the assessment proposed, if so."
    )
    explanation: str


class DeniedView(_Model):
    """An adjuster reviewed the claim and could not approve it (only a person ever denies)."""

    kind: Literal["denied"] = "denied"
    reason: str = Field(description="The adjuster's reason, written for the customer.")
    explanation: str


class NeedsPhotosView(_Model):
    """An adjuster needs more photos: add them with `POST add_photos_url`."""

    kind: Literal["needs_photos"] = "needs_photos"
    reason: str = Field(description="What the adjuster needs to see, written for the customer.")
    explanation: str
    add_photos_url: str = Field(examples=["/v1/claims/0b0e6c1e-3f7b-4c8e-9f1e-2a7d3c9b8f10/photos"])


DecisionView = Annotated[
    OfferView | ReviewView | ApprovedView | DeniedView | NeedsPhotosView, Field(discriminator="kind")
]


class TimelineEntry(_Model):
    at: datetime
    from_state: ClaimState | None
    to_state: ClaimState
    actor: str = Field(
        description="For customers: `you`, `ClaimLane` or `adjuster` (never a person's id). "
        "For staff: the recorded actor, e.g. `adjuster:7`."
    )
    reasons: list[str] = Field(default_factory=list)


class ClaimSummary(_Model):
    """One claim in the customer's list: what a row of the app shows, and where to follow it."""

    id: str
    url: str = Field(
        description="The claim's full view.", examples=["/v1/claims/0b0e6c1e-3f7b-4c8e-9f1e-2a7d3c9b8f10"]
    )
    status: ClaimState
    status_description: str = Field(description="What the status means, for the customer.")
    tracking_number: str
    declared_value: MoneyStr
    currency: str = Field(examples=["CNY"])
    created_at: datetime
    updated_at: datetime
    expected_decision_at: datetime | None
    offer_amount: MoneyStr | None = Field(None, description="The amount of an offer waiting for an answer.")
    payout_amount: MoneyStr | None = Field(None, description="What is paid, once accepted or approved.")


class ClaimList(_Model):
    """The customer's claims, newest first, a page at a time."""

    items: list[ClaimSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page.", examples=[None]
    )


class ClaimView(_Model):
    """Where a claim stands, and why."""

    id: str
    status: ClaimState
    status_description: str = Field(description="What the status means, for the customer.")
    tracking_number: str
    declared_value: MoneyStr = Field(
        description="What a payout is computed on: the value insured when the parcel was shipped (or, "
        "until the carrier's record arrives, the value given with the claim)."
    )
    currency: str = Field(examples=["CNY"])
    claimed_value: MoneyStr | None = Field(
        None, description="The value given with the claim, if any; never paid above the insured value."
    )
    description: str | None
    created_at: datetime
    photos: list[PhotoView]
    claim_grade: int | None = Field(None, description="The claim's damage grade (0 none .. 3 severe).")
    claim_probs: list[float] | None = None
    confidence: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$")] | None = Field(
        None, description="Probability of the claim grade, as a decimal string."
    )
    decision: DecisionView | None = None
    expected_decision_at: datetime | None = None
    accepted_option: Literal["cash", "reshipment", "store_credit"] | None = None
    payout_amount: MoneyStr | None = None
    timeline: list[TimelineEntry]


class AcceptRequest(_Model):
    """How the customer takes the offer; must be one of the offer's options."""

    option: Literal["cash", "reshipment", "store_credit"]


class PhotosAdded(_Model):
    """The 202 answer to added photos: stored, and the claim queued for assessment again."""

    id: str = Field(description="The claim id.")
    status: ClaimState = Field(description="Always `assessing` here.")
    url: str = Field(description="Where to follow the claim (also in the Location header).")
    photos_added: int
    expected_decision_at: datetime | None = None


# --------------------------------------------------------------------------------------------------
# Review (adjusters and admins)


class SlaView(_Model):
    """Where the case's next deadline stands: the first response until an adjuster has taken the case
    since it entered review, the decision after that (whichever is worse while both are pending)."""

    state: Literal["on_time", "due_soon", "overdue"]
    due: datetime
    remaining_s: int = Field(description="Seconds left; negative once overdue.")


class QueueItemView(_Model):
    claim_id: str
    url: str = Field(description="The case: `GET /v1/review/{claim_id}`.")
    tracking_number: str
    state: ClaimState
    reasons: list[str] = Field(description="Why the claim is in review (reason codes).")
    declared_value: MoneyStr
    currency: str
    model_grade: int | None = Field(None, description="The model's claim grade (0-3); null if unassessed.")
    confidence: Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?$")] | None = None
    entered_review_at: datetime | None
    first_response_due_at: datetime | None
    decision_due_at: datetime | None
    sla: SlaView
    watch: bool = Field(description="A repeat claim: same customer or same tracking number as another.")
    prior_claims: int
    lease_holder: str | None = Field(None, description="The adjuster holding the case (a live lease).")
    lease_expires_at: datetime | None = None


class QueueView(_Model):
    """Claims in review: overdue first, then by decision deadline, then by time in review."""

    items: list[QueueItemView]
    count: int


class CasePhotoView(_Model):
    id: str
    position: int
    url: str = Field(description="The served copy of the photo (re-encoded JPEG, no metadata).")
    heatmap_url: str | None = Field(None, description="Where the model saw damage (a PNG layer), if any.")
    grade: int | None = None
    grade_probs: list[float] | None = None
    adjuster_grade: int | None = Field(
        None, description="The grade an adjuster gave it in the last decision."
    )


class PriorClaimView(_Model):
    id: str
    created_at: datetime
    state: ClaimState
    declared_value: MoneyStr
    currency: str
    tracking_number: str
    outcome: str | None = Field(None, description="How it ended (paid, reshipment, denied); null if open.")
    same_customer: bool
    same_tracking_number: bool


class AuditEntryView(_Model):
    id: int
    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    reasons: list[str]
    detail: dict[str, Any]


class NoteView(_Model):
    id: int
    at: datetime
    author_id: int
    author: str | None
    text: str


class PhotoMatchView(_Model):
    position: int = Field(description="This claim's photo (1-based).")
    photo_url: str | None = Field(None, description="This claim's photo.")
    other_claim_id: str
    other_claim_url: str = Field(description="The earlier claim's case.")
    other_photo_url: str = Field(description="The matching photo of the other claim.")
    distance: int = Field(description="Bits that differ between the perceptual hashes (0: the same photo).")


class IntegrityView(_Model):
    """What the integrity checks found: each reason with its evidence."""

    reasons: list[str]
    shipment: dict[str, Any] | None = Field(
        None, description="The carrier's record when the claim was decided."
    )
    claimed_value: MoneyStr | None = None
    parcel_claims: list[dict[str, Any]] = Field(description="Other claims on the same tracking number.")
    photo_matches: list[PhotoMatchView]
    recent_claims: int = Field(description="This customer's claims in the policy's repeat-claimant window.")


class CaseView(_Model):
    """One case, with everything an adjuster needs to decide it."""

    claim: ClaimView
    queue: QueueItemView = Field(description="The case as the queue shows it (SLA, lease, watch).")
    photos: list[CasePhotoView]
    decision: dict[str, Any] | None = Field(None, description="The stored decision record, as it is.")
    proposed_amount: MoneyStr | None = Field(
        None, description="What the policy pays for the model's grade: what `approve` pays."
    )
    history: list[PriorClaimView]
    timeline: list[AuditEntryView]
    notes: list[NoteView]
    integrity: IntegrityView | None = Field(None, description="The fraud checks' findings, once assessed.")


class TakeResult(_Model):
    claim_id: str
    lease_expires_at: datetime
    lease_seconds: int


class DecisionRequest(_Model):
    """An adjuster's decision on a case they hold."""

    action: Literal["approve", "adjust", "deny", "request_photos"]
    amount: str | None = Field(
        None,
        max_length=64,
        description="A decimal string. approve: absent or the proposed amount; adjust: required.",
        examples=["150.00"],
    )
    reason: str | None = Field(
        None,
        max_length=10_000,
        description="Required for adjust, deny and request_photos; shown to the customer.",
    )
    grades: dict[str, Annotated[int, Field(strict=True)]] = Field(
        default_factory=dict, description="The adjuster's damage grade (0-3) for EVERY photo, by photo id."
    )


class NoteRequest(_Model):
    text: str = Field(
        max_length=20_000, description="1-4000 characters; staff only, never shown to customers."
    )


# --------------------------------------------------------------------------------------------------
# Health


class Liveness(_Model):
    status: Literal["alive"] = "alive"


class CheckResult(_Model):
    ok: bool
    detail: str | None = None
    duration_ms: float


class Readiness(_Model):
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult]


# --------------------------------------------------------------------------------------------------
# Admin: the model registry


class ModelVersionView(_Model):
    version: str
    parent: str | None = None
    created_at: str = Field(description="When it was registered (ISO 8601, UTC).")
    registered_by: str
    train_manifest_sha256: str | None = None
    metrics: dict[str, Any] = Field(
        default_factory=dict, description="Headline test metrics from the version's metrics.json, if any."
    )
    aliases: list[str] = Field(default_factory=list, description="`champion` and/or `challenger`.")
    size_bytes: int = 0
    last_gate: dict[str, Any] | None = Field(
        None, description="The promotion gate of its latest promotion (or override), if any."
    )


class ModelsView(_Model):
    aliases: dict[str, str | None] = Field(description="Alias -> version (null when not set).")
    versions: list[ModelVersionView] = Field(description="Newest first.")
    evalset: dict[str, Any] | None = Field(None, description="The fixed evaluation set, if installed.")


class PromoteRequest(_Model):
    override_reason: str | None = Field(
        None,
        max_length=2000,
        description="Promote even if the gate refuses; the reason is recorded in the model events.",
    )


class GateRowView(_Model):
    set: str = Field(description="`fixed` (the registry's evaluation set) or `reviewed` (recent labels).")
    metric: str
    champion: float | None
    challenger: float | None
    delta: float | None
    tolerance: float | None
    status: str = Field(description="ok, fail, n/a, or `not enough samples` (does not block).")


class GateView(_Model):
    passed: bool
    failures: list[str]
    notes: list[str]
    rows: list[GateRowView]
    champion: str | None
    challenger: str
    evalset_sha256: str | None = None
    metrics: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict, description="set -> champion|challenger -> metrics."
    )


class PromotionView(_Model):
    version: str
    previous_version: str | None
    promoted: bool
    action: Literal["promote", "override"] | None
    override_reason: str | None
    gate: GateView


class RollbackRequest(_Model):
    reason: str = Field(min_length=1, max_length=2000, description="Why the champion is rolled back.")


class RollbackView(_Model):
    champion: str = Field(description="The champion now.")
    previous_version: str | None = Field(description="The champion rolled back from.")


class ChallengerRequest(_Model):
    reason: str | None = Field(None, max_length=2000)


class ChallengerView(_Model):
    challenger: str
    previous_challenger: str | None


# --------------------------------------------------------------------------------------------------
# Shipments (the carrier's integration)


class ShipmentIn(_Model):
    """A shipment as the carrier's systems know it. Text fields, checked by the service, so each
    problem is named in the carrier's terms (money as decimal text, times ISO 8601 with a zone)."""

    declared_value: str = Field(
        description="Value insured at shipping (保价), decimal text.", examples=["300.00"]
    )
    currency: str = Field(examples=["CNY"])
    status: str = Field(
        description="created, in_transit, delivered, returned or lost.", examples=["delivered"]
    )
    shipped_at: str | None = Field(None, examples=["2026-12-01T09:30:00+08:00"])
    delivered_at: str | None = Field(
        None,
        description="Required when delivered. ISO 8601 with a zone.",
        examples=["2026-12-03T15:10:00+08:00"],
    )
    sender_ref: str | None = Field(None, description="The carrier's reference for the sender.")
    recipient_ref: str | None = Field(None, description="The carrier's reference for the recipient.")
    service: str | None = Field(None, examples=["standard"])


class ShipmentView(_Model):
    tracking_number: str
    declared_value: MoneyStr
    currency: str
    status: str
    shipped_at: datetime | None
    delivered_at: datetime | None
    sender_ref: str | None
    recipient_ref: str | None
    service: str | None
    updated_at: datetime
    created: bool = Field(False, description="True when this request created the record.")
    changed: bool = Field(False, description="False when the record already said exactly this.")
    rechecked_claims: list[str] = Field(
        default_factory=list, description="Claims that waited for this shipment and are assessed again."
    )


class ImportReportView(_Model):
    rows: int
    created: int
    updated: int
    unchanged: int
    rechecked_claims: list[str]


# --------------------------------------------------------------------------------------------------
# Payouts (the finance outbox)


class PayoutView(_Model):
    """One payout instruction: what finance must pay, to whom (the claim's customer), and whether it has."""

    id: int
    claim_id: str
    customer_id: int
    option: Literal["cash", "reshipment", "store_credit"]
    amount: MoneyStr | None = Field(description="Exact decimal text; null for a reshipment.")
    currency: str
    created_at: datetime
    paid_at: datetime | None
    payment_ref: str | None


class PayoutPage(_Model):
    items: list[PayoutView]
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last page.")


class MarkPaidRequest(_Model):
    payment_ref: str = Field(
        min_length=1,
        max_length=100,
        description="Finance's reference of the payment (the same one again is a retry).",
    )


class MarkPaidView(PayoutView):
    changed: bool = Field(description="False when this payment was already recorded with this reference.")


# --------------------------------------------------------------------------------------------------
# Satisfaction


class FeedbackRequest(_Model):
    rating: int = Field(ge=1, le=5, description="1 (very dissatisfied) to 5 (very satisfied).")
    comment: str | None = Field(None, max_length=1000, description="What went well or badly, optional.")


class FeedbackView(_Model):
    claim_id: str
    rating: int
    comment: str | None
    created_at: datetime


# --------------------------------------------------------------------------------------------------
# Webhooks


class WebhookRequest(_Model):
    url: str = Field(
        max_length=2000,
        description="Where events are POSTed: an absolute https URL (http is allowed in development).",
        examples=["https://app.example.com/claimlane/events"],
    )
    description: str | None = Field(None, max_length=200)


class WebhookView(_Model):
    id: str
    url: str
    description: str | None
    created_at: datetime


class WebhookCreated(WebhookView):
    secret: str = Field(
        description="The signing secret (`whsec_...`, Standard Webhooks): shown only now, keep it safe."
    )


class WebhookList(_Model):
    items: list[WebhookView]


class WebhookAttemptView(_Model):
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class WebhookMessageView(_Model):
    id: str = Field(description="The `webhook-id` the receiver saw.")
    endpoint_id: str
    event_type: str
    claim_id: str
    status: str
    created_at: datetime
    state: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending only).")
    delivered_at: datetime | None
    last_error: str | None
    log: list[WebhookAttemptView]


class WebhookMessageList(_Model):
    items: list[WebhookMessageView] = Field(
        description="Newest first, at most `limit`; narrow with the filters."
    )
