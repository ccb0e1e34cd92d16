"""Webhooks: integrations register URLs for claim status events (`/v1/webhooks`); admins read the
delivery log and send a message again (`/v1/admin/webhooks`). Thin: services.webhooks holds the rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from api.deps import UUID_PATTERN, AdminUser, IntegrationUser, SessionDep, SettingsDep
from api.errors import error_responses
from api.routing import AuthorisedRoute
from api.schemas import (
    WebhookAttemptView,
    WebhookCreated,
    WebhookList,
    WebhookMessageList,
    WebhookMessageView,
    WebhookRequest,
    WebhookView,
)
from services import webhooks
from storage.tables import WebhookEndpoint

router = APIRouter(tags=["webhooks"], route_class=AuthorisedRoute)

_ERRORS: dict[int, str] = {
    401: "Missing or invalid API key.",
    403: "Integrations and admins only (the log: admins only).",
    404: "No such endpoint or message.",
    409: "The message's endpoint is disabled.",
    422: "Invalid fields; the message names each.",
    503: "The database is unavailable; retry after Retry-After seconds.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(_ERRORS, 401, 403, *codes)


EndpointId = Annotated[str, Path(pattern=UUID_PATTERN, description="The endpoint's id (a UUID).")]
MessageId = Annotated[str, Path(pattern=UUID_PATTERN, description="The message's id, its `webhook-id`.")]


def _view(endpoint: WebhookEndpoint) -> WebhookView:
    return WebhookView(
        id=endpoint.id, url=endpoint.url, description=endpoint.description, created_at=endpoint.created_at
    )


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=WebhookCreated,
    summary="Register a URL for claim status events (the signing secret is shown once)",
    responses=_errors(422, 503),
)
def register(
    body: WebhookRequest, user: IntegrationUser, session: SessionDep, settings: SettingsDep
) -> WebhookCreated:
    endpoint = webhooks.register(
        session, user, body.url, body.description, production=settings.environment == "production"
    )
    return WebhookCreated(**_view(endpoint).model_dump(), secret=endpoint.secret)


@router.get(
    "/v1/webhooks", response_model=WebhookList, summary="Your active endpoints", responses=_errors(503)
)
def list_endpoints(user: IntegrationUser, session: SessionDep) -> WebhookList:
    return WebhookList(items=[_view(e) for e in webhooks.list_endpoints(session, user)])


@router.delete(
    "/v1/webhooks/{endpoint_id}",
    status_code=204,
    response_class=Response,
    summary="Stop deliveries to an endpoint",
    responses=_errors(404, 503),
)
def disable(endpoint_id: EndpointId, user: IntegrationUser, session: SessionDep) -> Response:
    webhooks.disable(session, user, endpoint_id)
    return Response(status_code=204)


def _message(entry: webhooks.LogEntry) -> WebhookMessageView:
    m = entry.message
    return WebhookMessageView(
        id=m.id,
        endpoint_id=m.endpoint_id,
        event_type=m.event_type,
        claim_id=m.event.claim_id,
        status=m.event.to_state or "",
        created_at=m.created_at,
        state=m.state,  # type: ignore[arg-type]
        attempts=m.attempts,
        next_attempt_at=m.next_attempt_at if m.state == "pending" else None,
        delivered_at=m.delivered_at,
        last_error=m.last_error,
        log=[
            WebhookAttemptView(at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms)
            for a in entry.attempts
        ],
    )


@router.get(
    "/v1/admin/webhooks/messages",
    response_model=WebhookMessageList,
    summary="The delivery log: messages newest first, with every attempt",
    responses=_errors(422, 503),
)
def delivery_log(
    user: AdminUser,
    session: SessionDep,
    state: Annotated[Literal["pending", "delivered", "failed", "cancelled"] | None, Query()] = None,
    endpoint_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    claim_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> WebhookMessageList:
    entries = webhooks.delivery_log(
        session, state=state, endpoint_id=endpoint_id, claim_id=claim_id, limit=limit
    )
    return WebhookMessageList(items=[_message(e) for e in entries])


@router.post(
    "/v1/admin/webhooks/messages/{message_id}/redeliver",
    status_code=202,
    response_model=WebhookMessageView,
    summary="Send a message again now (same webhook-id, so receivers can tell)",
    responses=_errors(404, 409, 503),
)
def redeliver(message_id: MessageId, user: AdminUser, session: SessionDep) -> WebhookMessageView:
    return _message(webhooks.redeliver(session, message_id))
