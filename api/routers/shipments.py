"""The carrier's integration (`/v1/shipments...`, integration or admin role): shipment records.

- `PUT /v1/shipments/{tracking_number}`: create or replace one record (idempotent: the same record
  again changes nothing). 200 with the record; 422 names every bad field.
- `POST /v1/shipments:import`: a batch as CSV (`text/csv`, with a header row) or JSON lines
  (`application/x-ndjson`), all or nothing: 200 with counts, or 422 naming every bad row.
- `GET /v1/shipments/{tracking_number}`: the record (integration, adjuster or admin).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from api.deps import DispatcherDep, IntegrationUser, SessionDep, require_roles
from api.errors import NotFound, PayloadTooLarge, error_responses
from api.routing import AuthorisedRoute
from api.schemas import ImportReportView, ShipmentIn, ShipmentView
from claims.money import amount_text
from services import shipments as shipment_service
from storage import shipments as shipment_rows
from storage.tables import Shipment, User

router = APIRouter(prefix="/v1", tags=["shipments"], route_class=AuthorisedRoute)

MAX_BATCH_BYTES = 16 * 1024 * 1024

_ERRORS: dict[int, str] = {
    401: "Missing or invalid API key.",
    403: "Integration (carrier systems) or admin users only.",
    404: "No shipment with this tracking number.",
    413: "The batch is larger than 16 MiB: split it.",
    422: "Invalid record or batch; the message and details name each field (and row).",
    503: "A dependency (database) is unavailable; retry after Retry-After seconds.",
}

TrackingNumber = Annotated[
    str, Path(description="The parcel's tracking number: 4-40 letters, digits or '-'.")
]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(_ERRORS, 401, 403, *codes)


def _view(shipment: Shipment, **extra: Any) -> ShipmentView:
    return ShipmentView(
        tracking_number=shipment.tracking_number,
        declared_value=amount_text(shipment.declared_value, shipment.currency) or "0",
        currency=shipment.currency,
        status=str(shipment.status),
        shipped_at=shipment.shipped_at,
        delivered_at=shipment.delivered_at,
        sender_ref=shipment.sender_ref,
        recipient_ref=shipment.recipient_ref,
        service=shipment.service,
        updated_at=shipment.updated_at,
        **extra,
    )


@router.put(
    "/shipments/{tracking_number}",
    response_model=ShipmentView,
    name="put_shipment",
    summary="Create or replace a shipment record (idempotent)",
    responses=_errors(503),
)
def put_shipment(
    tracking_number: TrackingNumber,
    body: ShipmentIn,
    user: IntegrationUser,
    session: SessionDep,
    dispatcher: DispatcherDep,
) -> ShipmentView:
    result = shipment_service.put_shipment(
        session, dispatcher, tracking_number, body.model_dump(exclude_none=True), f"{user.role}:{user.id}"
    )
    return _view(
        result.shipment,
        created=result.created,
        changed=result.changed,
        rechecked_claims=list(result.rechecked),
    )


@router.post(
    "/shipments:import",
    response_model=ImportReportView,
    name="import_shipments",
    summary="Import a batch of shipment records (CSV or JSON lines), all or nothing",
    responses=_errors(413, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_shipments(
    request: Request, user: IntegrationUser, session: SessionDep, dispatcher: DispatcherDep
) -> ImportReportView:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BATCH_BYTES:
        raise PayloadTooLarge(
            f"the batch is larger than {MAX_BATCH_BYTES} bytes: split it", code="batch_too_large"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BATCH_BYTES:
            raise PayloadTooLarge(
                f"the batch is larger than {MAX_BATCH_BYTES} bytes: split it", code="batch_too_large"
            )
        chunks.append(chunk)
    content_type = request.headers.get("content-type", "")
    rows = shipment_service.parse_batch(b"".join(chunks), content_type)
    report = await run_in_threadpool(
        shipment_service.import_shipments, session, dispatcher, rows, f"{user.role}:{user.id}"
    )
    return ImportReportView(
        rows=report.rows,
        created=report.created,
        updated=report.updated,
        unchanged=report.unchanged,
        rechecked_claims=list(report.rechecked),
    )


@router.get(
    "/shipments/{tracking_number}",
    response_model=ShipmentView,
    name="get_shipment",
    summary="A shipment record",
    responses=_errors(404, 503),
)
def get_shipment(
    tracking_number: TrackingNumber,
    session: SessionDep,
    user: Annotated[User, Depends(require_roles("integration", "adjuster", "admin"))],
) -> ShipmentView:
    shipment = shipment_rows.get(session, tracking_number.strip())
    if shipment is None:
        raise NotFound("no shipment with this tracking number")
    return _view(shipment)
