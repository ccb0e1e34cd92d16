"""The administrators' API over the model registry (`/v1/admin/...`, admin role only).

Registering a version is not here (model folders are tens of MB): use ``claimlane model register``.
The rules live in `services.promotion`, shared with the CLI; these routes translate HTTP to those
calls and their errors to answers:

- `GET /models`: versions (newest first) with their aliases, metrics and last gate; the aliases;
  the fixed evaluation set.
- `POST /models/{version}/promote` {"override_reason"?}: 200 with the gate table; 409
  `promotion_refused` with the failures (details) when the gate refuses and no reason overrides it.
- `POST /models/rollback` {"reason"}: the previous champion serves again; 409 when there is none.
- `POST /models/{version}/challenger` {"reason"?}: shadow-run that version.
- `GET /models/shadow-report`: how the challenger's decisions compare with the champion's.

Promotion scores two models on a few hundred photos: seconds to a minute on CPU. The routes are
plain `def`, so FastAPI runs them in its thread pool and the event loop is never blocked.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import AdminUser, ServicesDep, SessionDep
from api.errors import ClaimLaneError, Conflict, NotFound, Unprocessable, error_responses
from api.routing import AuthorisedRoute
from api.schemas import (
    ChallengerRequest,
    ChallengerView,
    ModelsView,
    PromoteRequest,
    PromotionView,
    RollbackRequest,
    RollbackView,
)
from models.registry import NoRollbackTarget, RegistryError, VersionNotFound
from services import promotion

logger = logging.getLogger("claimlane.api.admin")

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=AuthorisedRoute)

_ERRORS: dict[int, str] = {
    401: "Missing or invalid API key.",
    403: "Admins only.",
    404: "No such model version.",
    409: "Refused: the gate failed (`promotion_refused`, details list the failures), no earlier "
    "champion to roll back to, or the version already holds that alias.",
    422: "Invalid fields; the message names each.",
    501: "Not available in this build.",
    503: "A dependency (database, object store) is unavailable; retry after Retry-After seconds.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(_ERRORS, 401, 403, *codes)


def _actor(user) -> str:
    return f"admin:{user.id}"


def _registry_error(exc: RegistryError) -> ClaimLaneError:
    if isinstance(exc, VersionNotFound):
        return NotFound(str(exc), code="model_version_not_found")
    if isinstance(exc, NoRollbackTarget):
        return Conflict(str(exc), code="no_rollback_target")
    if isinstance(exc, promotion.PromotionError):
        return Conflict(str(exc), code="promotion_conflict")
    return Conflict(str(exc), code="registry_conflict")


@router.get(
    "/models",
    response_model=ModelsView,
    summary="Model versions, aliases and metrics",
    responses=_errors(503),
)
def list_models(user: AdminUser, services: ServicesDep) -> ModelsView:
    return ModelsView.model_validate(promotion.overview(services))


@router.get(
    "/models/shadow-report",
    summary="The challenger's shadow decisions against the champion's",
    responses=_errors(501, 503),
)
def shadow_report(
    user: AdminUser,
    session: SessionDep,
    challenger_version: Annotated[
        str | None, Query(max_length=64, description="Only this challenger.")
    ] = None,
    since: Annotated[
        datetime | None, Query(description="Only predictions at or after this time (ISO 8601).")
    ] = None,
) -> dict[str, Any]:
    from workers.shadow import shadow_report as report

    filters: dict[str, Any] = {}
    if challenger_version is not None:
        filters["challenger_version"] = challenger_version
    if since is not None:
        filters["since"] = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
    return report(session, **filters)


@router.post(
    "/models/{version}/promote",
    response_model=PromotionView,
    summary="Promote a version to champion through the gate",
    responses=_errors(404, 409, 503),
)
def promote_model(
    version: str, user: AdminUser, services: ServicesDep, body: PromoteRequest | None = None
) -> PromotionView:
    try:
        result = promotion.promote(
            services, version, actor=_actor(user), override_reason=body.override_reason if body else None
        )
    except promotion.PromotionRefused as exc:
        raise Conflict(
            str(exc),
            code="promotion_refused",
            details={"failures": exc.result.gate.failures, "gate": exc.result.gate_json()},
        ) from None
    except RegistryError as exc:
        raise _registry_error(exc) from None
    return PromotionView.model_validate(result.to_json())


@router.post(
    "/models/rollback",
    response_model=RollbackView,
    summary="Roll the champion back",
    responses=_errors(409, 503),
)
def rollback_model(body: RollbackRequest, user: AdminUser, services: ServicesDep) -> RollbackView:
    try:
        result = promotion.rollback_champion(services, actor=_actor(user), reason=body.reason)
    except RegistryError as exc:
        raise _registry_error(exc) from None
    except ValueError as exc:
        raise Unprocessable(str(exc)) from None
    return RollbackView(champion=result.champion, previous_version=result.previous_version)


@router.post(
    "/models/{version}/challenger",
    response_model=ChallengerView,
    summary="Set the challenger",
    responses=_errors(404, 409, 503),
)
def set_challenger(
    version: str, user: AdminUser, services: ServicesDep, body: ChallengerRequest | None = None
) -> ChallengerView:
    try:
        previous = promotion.set_challenger(
            services, version, actor=_actor(user), reason=body.reason if body else None
        )
    except RegistryError as exc:
        raise _registry_error(exc) from None
    return ChallengerView(challenger=version, previous_challenger=previous)
