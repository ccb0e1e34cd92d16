"""Request and response models of the public API (Pydantic v2). OpenAPI (/docs) is built from these.

Money is always a decimal string in JSON ("150.00"), never a number: a JSON number is a binary
float to most clients, and a payout must survive the round trip to the last minor unit.
Times are ISO 8601 in UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from claims.lifecycle import ClaimState

MoneyStr = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+(\.[0-9]+)?$",
        examples=["150.00"],
        description="A decimal amount as a string (never a JSON number).",
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class ReviewView(_Model):
    """The claim went to a human adjuster, and why."""

    kind: Literal["review"] = "review"
    reasons: list[str]
    explanation: str


DecisionView = Annotated[OfferView | ReviewView, Field(discriminator="kind")]


class TimelineEntry(_Model):
    at: datetime
    from_state: ClaimState | None
    to_state: ClaimState
    actor: str = Field(
        description="For customers: `you`, `ClaimLane` or `adjuster` (never a person's id). "
        "For staff: the recorded actor, e.g. `adjuster:7`."
    )
    reasons: list[str] = Field(default_factory=list)


class ClaimView(_Model):
    """Where a claim stands, and why."""

    id: str
    status: ClaimState
    status_description: str = Field(description="What the status means, for the customer.")
    tracking_number: str
    declared_value: MoneyStr
    currency: str = Field(examples=["CNY"])
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
