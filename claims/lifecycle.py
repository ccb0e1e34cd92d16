"""The claim lifecycle: one table of allowed moves, and one guard every state change goes through.

Keeping every allowed move, and who may make it, in a single table (rather than scattered ``if``
checks in handlers) makes the whole lifecycle reviewable at a glance and makes an illegal move
impossible to make by accident: the API, the workers and the review console all call
:func:`transition`, which refuses anything the table does not list (HTTP 409 at the API).

State diagram (the happy paths, then every move with who may make it)::

    submitted --> assessing --(fast lane)--> offered --(accepts)--> accepted ---+
                   |    ^                      |                                |
     (unsure, or   |    | (photos added)       | (declines / lets it expire)    v
     not a fast-   |    |                      v                         payout_instructed [end]
     lane claim)   |  needs_photos        declined, expired                     ^
                   |    ^                      |                                |
                   |    | (asks for photos)    | (goes to a person)             |
                   +--> in_review <------------+                                |
                         |   |                                                  |
                         |   +--(approves)--> approved -------------------------+
                         +--(denies)--> denied [end]

    submitted     --system-->            assessing
    assessing     --system-->            offered, in_review
    offered       --customer-->          accepted, declined
    offered       --system-->            expired
    declined      --system-->            in_review
    expired       --customer, system-->  in_review
    in_review     --adjuster-->          approved, denied, needs_photos
    in_review     --system-->            assessing (the shipment it waited for arrived)
    needs_photos  --customer, system-->  assessing
    accepted      --system-->            payout_instructed
    approved      --system-->            payout_instructed

- assessing -> offered: the policy's fast lane made an instant offer;
- assessing -> in_review: the policy sent the claim to a person (the machine never denies);
- declined / expired offers go to a person, never to a dead end: a customer who turned down or
  missed an offer still has a damaged parcel;
- only an adjuster approves, denies or asks for more photos;
- denied and payout_instructed are terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class ClaimState(StrEnum):
    """Where a claim stands. Stored as its string value, so renaming a member is a data migration."""

    SUBMITTED = "submitted"
    ASSESSING = "assessing"
    OFFERED = "offered"
    IN_REVIEW = "in_review"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    APPROVED = "approved"
    DENIED = "denied"
    NEEDS_PHOTOS = "needs_photos"
    PAYOUT_INSTRUCTED = "payout_instructed"


class Actor(StrEnum):
    """Who asks for a move: the system (workers, timers), the customer, or a human adjuster."""

    SYSTEM = "system"
    CUSTOMER = "customer"
    ADJUSTER = "adjuster"


_S, _C, _A = Actor.SYSTEM, Actor.CUSTOMER, Actor.ADJUSTER

# (from, to) -> the actors allowed to make that move. A pair that is not here is never allowed.
TRANSITIONS: Mapping[tuple[ClaimState, ClaimState], frozenset[Actor]] = MappingProxyType(
    {
        (ClaimState.SUBMITTED, ClaimState.ASSESSING): frozenset({_S}),
        (ClaimState.ASSESSING, ClaimState.OFFERED): frozenset({_S}),
        (ClaimState.ASSESSING, ClaimState.IN_REVIEW): frozenset({_S}),
        (ClaimState.OFFERED, ClaimState.ACCEPTED): frozenset({_C}),
        (ClaimState.OFFERED, ClaimState.DECLINED): frozenset({_C}),
        (ClaimState.OFFERED, ClaimState.EXPIRED): frozenset({_S}),
        (ClaimState.DECLINED, ClaimState.IN_REVIEW): frozenset({_S}),
        # The customer may ask for a review of an expired offer; the system may also send it there.
        (ClaimState.EXPIRED, ClaimState.IN_REVIEW): frozenset({_C, _S}),
        (ClaimState.IN_REVIEW, ClaimState.APPROVED): frozenset({_A}),
        (ClaimState.IN_REVIEW, ClaimState.DENIED): frozenset({_A}),
        (ClaimState.IN_REVIEW, ClaimState.NEEDS_PHOTOS): frozenset({_A}),
        # A claim held only because its shipment was not known yet is assessed again when the
        # carrier's record arrives (services.shipments); nobody else takes a claim out of review.
        (ClaimState.IN_REVIEW, ClaimState.ASSESSING): frozenset({_S}),
        # The customer uploads photos; the system may re-assess too (say, after a model upgrade).
        (ClaimState.NEEDS_PHOTOS, ClaimState.ASSESSING): frozenset({_C, _S}),
        (ClaimState.ACCEPTED, ClaimState.PAYOUT_INSTRUCTED): frozenset({_S}),
        (ClaimState.APPROVED, ClaimState.PAYOUT_INSTRUCTED): frozenset({_S}),
    }
)

# States a claim never leaves. A denied claim is reopened, if ever, as a new claim with its own trail.
TERMINAL_STATES: frozenset[ClaimState] = frozenset({ClaimState.DENIED, ClaimState.PAYOUT_INSTRUCTED})

# What the customer sees under "where does my claim stand, and why".
DESCRIPTIONS: Mapping[ClaimState, str] = MappingProxyType(
    {
        ClaimState.SUBMITTED: "We have received your claim and photos.",
        ClaimState.ASSESSING: "We are assessing the damage shown in your photos.",
        ClaimState.OFFERED: "We have made you an offer. Accept it, or decline it to have an adjuster review "
        "your claim.",
        ClaimState.IN_REVIEW: "A claims adjuster is reviewing your photos.",
        ClaimState.ACCEPTED: "You accepted our offer; we are arranging your payout.",
        ClaimState.DECLINED: "You declined our offer; your claim is being passed to an adjuster.",
        ClaimState.EXPIRED: "Our offer expired before it was accepted; you can ask an adjuster to review "
        "your claim.",
        ClaimState.APPROVED: "An adjuster approved your claim; we are arranging your payout.",
        ClaimState.DENIED: "An adjuster reviewed your claim and could not approve it.",
        ClaimState.NEEDS_PHOTOS: "An adjuster needs more photos of the damage. Please add them to your claim.",
        ClaimState.PAYOUT_INSTRUCTED: "Your payout has been sent for payment.",
    }
)


class IllegalTransition(Exception):
    """A move the lifecycle table does not allow (or not for this actor). The API answers HTTP 409."""

    def __init__(self, current: ClaimState, target: ClaimState, actor: Actor) -> None:
        self.current = current
        self.target = target
        self.actor = actor
        allowed = TRANSITIONS.get((current, target))
        if allowed is None:
            message = f"cannot go from {current} to {target}"
        else:
            who = ", ".join(sorted(allowed))
            message = f"cannot go from {current} to {target} as {actor} (only {who} may)"
        super().__init__(message)


def transition(current: ClaimState, target: ClaimState, actor: Actor) -> ClaimState:
    """The one guard: `target` if `actor` may move a claim from `current` to it, else IllegalTransition.

    Returns the new state rather than mutating anything, so the caller persists it (with whatever
    optimistic-locking it uses) and this stays a pure function. Plain strings are accepted and
    converted; an unknown state or actor name raises ValueError.
    """
    current, target, actor = ClaimState(current), ClaimState(target), Actor(actor)
    if actor not in TRANSITIONS.get((current, target), frozenset()):
        raise IllegalTransition(current, target, actor)
    return target


def allowed_targets(current: ClaimState, actor: Actor) -> frozenset[ClaimState]:
    """The states `actor` may move a claim in `current` to (what buttons a UI may show)."""
    current, actor = ClaimState(current), Actor(actor)
    return frozenset(to for (frm, to), actors in TRANSITIONS.items() if frm == current and actor in actors)
