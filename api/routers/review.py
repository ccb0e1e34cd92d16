"""The adjusters' JSON API: the review queue, a case, taking it, deciding it, notes.

Adjusters and admins only (customers 403, no key 401). The rules are in `services.reviewing`, shared with
the web console; these routes only translate HTTP to one use case each (which commits) and shape the answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Request, Response

from api.deps import AdjusterUser, ClaimId, PhotoId, ServicesDep, SessionDep
from api.errors import error_responses
from api.routers.claims import ERROR_DESCRIPTIONS
from api.routing import AuthorisedRoute
from api.schemas import (
    AuditEntryView,
    CasePhotoView,
    CaseView,
    ClaimView,
    DecisionRequest,
    IntegrityView,
    NoteRequest,
    NoteView,
    PhotoMatchView,
    PriorClaimView,
    QueueItemView,
    QueueView,
    SlaView,
    TakeResult,
)
from api.views import claim_view
from claims.lifecycle import ClaimState
from claims.money import amount_text
from services import reviewing
from storage.tables import CaseNote, utcnow

router = APIRouter(prefix="/v1/review", tags=["review"], route_class=AuthorisedRoute)


def _item_view(item: reviewing.QueueItem) -> QueueItemView:
    return QueueItemView(
        claim_id=item.claim_id,
        url=f"/v1/review/{item.claim_id}",
        tracking_number=item.tracking_number,
        state=ClaimState(item.state),
        reasons=item.reasons,
        declared_value=amount_text(item.declared_value, item.currency),
        currency=item.currency,
        model_grade=item.model_grade,
        confidence=None if item.confidence is None else str(item.confidence),
        entered_review_at=item.entered_review_at,
        first_response_due_at=item.first_response_due_at,
        decision_due_at=item.decision_due_at,
        sla=SlaView(
            state=cast(
                Any, item.sla.state.value if hasattr(item.sla.state, "value") else str(item.sla.state)
            ),
            due=item.sla.due,
            remaining_s=int(item.sla.remaining.total_seconds()),
        ),
        watch=item.watch,
        prior_claims=item.prior_claims,
        lease_holder=item.lease_holder,
        lease_expires_at=item.lease_expires_at,
    )


def _note_view(note: CaseNote) -> NoteView:
    return NoteView(
        id=note.id,
        at=note.at,
        author_id=note.author_id,
        author=note.author.name if note.author is not None else None,
        text=note.text,
    )


@router.get(
    "/queue",
    response_model=QueueView,
    name="review_queue",
    summary="Claims waiting for an adjuster, most urgent first",
    responses=error_responses(ERROR_DESCRIPTIONS, 401, 403, 503),
)
def review_queue(
    user: AdjusterUser,
    session: SessionDep,
    services: ServicesDep,
    reason: Annotated[
        str | None, Query(max_length=64, description="Only claims in review for this reason code.")
    ] = None,
    value_band: Annotated[
        Literal["under_500", "500_2000", "over_2000"] | None,
        Query(description="Declared value in the claim's own currency: <500, 500-<2000, >=2000."),
    ] = None,
    status: Annotated[
        Literal["unassigned", "taken", "overdue"] | None,
        Query(description="unassigned (no live lease), taken (a live lease) or overdue."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=reviewing.MAX_QUEUE_LIMIT)] = 100,
) -> QueueView:
    filters = reviewing.QueueFilters(reason=reason, value_band=value_band, status=status, limit=limit)
    items = reviewing.list_queue(session, filters, utcnow(), services.deadlines)
    return QueueView(items=[_item_view(i) for i in items], count=len(items))


@router.get(
    "/{claim_id}",
    response_model=CaseView,
    name="review_case",
    summary="One case: photos, the machine's assessment, history, timeline and notes",
    responses=error_responses(ERROR_DESCRIPTIONS, 401, 403, 404, 503),
)
def review_case(
    claim_id: ClaimId, request: Request, user: AdjusterUser, session: SessionDep, services: ServicesDep
) -> CaseView:
    detail = reviewing.case_detail(session, claim_id, utcnow(), services.deadlines, services.policy)
    claim = detail.claim
    return CaseView(
        claim=claim_view(request, claim, user),
        queue=_item_view(detail.items),
        photos=[
            CasePhotoView(
                id=p.id,
                position=p.position,
                url=p.url,
                heatmap_url=p.heatmap_url,
                grade=p.grade,
                grade_probs=p.grade_probs,
                adjuster_grade=p.adjuster_grade,
            )
            for p in detail.photos
        ],
        decision=detail.decision,
        proposed_amount=amount_text(detail.proposed_amount, claim.currency),
        history=[
            PriorClaimView(
                id=h.id,
                created_at=h.created_at,
                state=ClaimState(h.state),
                declared_value=amount_text(h.declared_value, h.currency),
                currency=h.currency,
                tracking_number=h.tracking_number,
                outcome=h.outcome,
                same_customer=h.same_customer,
                same_tracking_number=h.same_tracking_number,
            )
            for h in detail.history
        ],
        timeline=[
            AuditEntryView(
                id=e.id,
                at=e.at,
                actor=e.actor,
                action=e.action,
                from_state=e.from_state,
                to_state=e.to_state,
                reasons=list(e.reason_codes or []),
                detail=dict(e.detail or {}),
            )
            for e in detail.timeline
        ],
        notes=[_note_view(n) for n in detail.notes],
        integrity=_integrity_view(request, detail.integrity),
    )


def _integrity_view(request: Request, found: reviewing.Integrity | None) -> IntegrityView | None:
    if found is None:
        return None
    claim_id = request.path_params.get("claim_id", "")
    return IntegrityView(
        reasons=found.reasons,
        shipment=found.shipment,
        claimed_value=found.claimed_value,
        parcel_claims=found.parcel_claims,
        photo_matches=[
            PhotoMatchView(
                position=m.position,
                photo_url=None if m.photo_id is None else reviewing.photo_url(claim_id, m.photo_id),
                other_claim_id=m.other_claim_id,
                other_claim_url=str(request.app.url_path_for("review_case", claim_id=m.other_claim_id)),
                other_photo_url=reviewing.photo_url(m.other_claim_id, m.other_photo_id),
                distance=m.distance,
            )
            for m in found.photo_matches
        ],
        recent_claims=found.recent_claims,
    )


@router.post(
    "/{claim_id}/take",
    response_model=TakeResult,
    name="review_take",
    summary="Take the case (or renew your hold) for 15 minutes",
    responses=error_responses(ERROR_DESCRIPTIONS, 401, 403, 404, 409, 503),
)
def review_take(claim_id: ClaimId, user: AdjusterUser, session: SessionDep) -> TakeResult:
    expires: datetime = reviewing.take(session, claim_id, user)
    return TakeResult(
        claim_id=claim_id,
        lease_expires_at=expires,
        lease_seconds=int(reviewing.LEASE.total_seconds()),
    )


@router.post(
    "/{claim_id}/decision",
    response_model=ClaimView,
    name="review_decide",
    summary="Approve, adjust, deny or ask for photos (you must hold the case)",
    responses=error_responses(ERROR_DESCRIPTIONS, 401, 403, 404, 409, 422, 503),
)
def review_decide(
    claim_id: ClaimId,
    body: DecisionRequest,
    request: Request,
    user: AdjusterUser,
    session: SessionDep,
    services: ServicesDep,
) -> ClaimView:
    claim = reviewing.decide(
        session,
        claim_id,
        user,
        body.action,
        amount=body.amount,
        reason=body.reason,
        grades=body.grades,
        policy=services.policy,
    )
    return claim_view(request, claim, user)


@router.post(
    "/{claim_id}/notes",
    status_code=201,
    response_model=NoteView,
    name="review_note",
    summary="Add a staff note to the case (never shown to the customer)",
    responses=error_responses(ERROR_DESCRIPTIONS, 401, 403, 404, 422, 503),
)
def review_note(claim_id: ClaimId, body: NoteRequest, user: AdjusterUser, session: SessionDep) -> NoteView:
    return _note_view(reviewing.note(session, claim_id, user, body.text))


@router.get(
    "/{claim_id}/photos/{photo_id}/heatmap",
    name="review_heatmap",
    summary="Where the model saw damage in a photo: a transparent PNG layer to lay over it",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The heatmap layer."},
        **error_responses(ERROR_DESCRIPTIONS, 401, 403, 404, 503),
    },
)
def review_heatmap(
    claim_id: ClaimId, photo_id: PhotoId, user: AdjusterUser, session: SessionDep, services: ServicesDep
) -> Response:
    data = reviewing.heatmap_png(session, services.store, claim_id, photo_id)
    return Response(
        content=data,
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
