"""The finance outbox for admins (and the finance system's admin key): payout instructions as JSON
pages or CSV, and the confirmation that one was paid. Thin: services.payouts holds the rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from api.deps import AdminUser, SessionDep
from api.errors import error_responses
from api.routing import AuthorisedRoute
from api.schemas import MarkPaidRequest, MarkPaidView, PayoutPage, PayoutView
from services import payouts
from storage.tables import PayoutInstruction, utcnow

router = APIRouter(prefix="/v1/admin/payouts", tags=["payouts"], route_class=AuthorisedRoute)

_ERRORS: dict[int, str] = {
    401: "Missing or invalid API key.",
    403: "Admins only.",
    404: "No such payout instruction.",
    409: "The payout was already marked paid with another reference.",
    422: "Invalid fields; the message names each.",
    503: "The database is unavailable; retry after Retry-After seconds.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(_ERRORS, 401, 403, *codes)


# Ids are INTEGER columns (32-bit on PostgreSQL): a larger number is a 422, never a driver overflow (500).
MAX_ID = 2**31 - 1

Status = Annotated[
    Literal["pending", "paid"] | None, Query(description="Only unpaid (`pending`) or `paid` instructions.")
]


def _view(row: PayoutInstruction) -> PayoutView:
    return PayoutView.model_validate(
        {**{c: getattr(row, c) for c in PayoutView.model_fields}, "amount": payouts.amount_of(row)}
    )


@router.get(
    "", response_model=PayoutPage, summary="Payout instructions, oldest first", responses=_errors(503)
)
def list_payouts(
    user: AdminUser,
    session: SessionDep,
    status: Status = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="`next_after` of the previous page.")] = 0,
    limit: Annotated[int, Query(ge=1, le=payouts.MAX_PAGE)] = 100,
) -> PayoutPage:
    rows, next_after = payouts.list_page(session, status, after, limit)
    return PayoutPage(items=[_view(r) for r in rows], next_after=next_after)


@router.get(
    ".csv",
    summary="Payout instructions as CSV for the finance system",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "One row per instruction."}, **_errors(503)},
)
def export_payouts(user: AdminUser, session: SessionDep, status: Status = None) -> Response:
    return Response(
        content=payouts.export_csv(session, status),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="payouts.csv"', "Cache-Control": "no-store"},
    )


@router.post(
    "/{payout_id}/paid",
    response_model=MarkPaidView,
    summary="Record that a payout was paid (idempotent for the same reference)",
    responses=_errors(404, 409, 503),
)
def mark_paid(
    payout_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    body: MarkPaidRequest,
    user: AdminUser,
    session: SessionDep,
) -> MarkPaidView:
    row, changed = payouts.mark_paid(session, payout_id, user, body.payment_ref, utcnow())
    return MarkPaidView.model_validate({**_view(row).model_dump(), "changed": changed})
