"""The mobile app's contract: file a claim with photos, follow it, accept or decline an offer.

Thin by design: each route parses the request, authorises through a dependency (`CustomerUser`,
`CurrentUser`), calls one use case of `services.claims` and shapes the answer (`api.views`). The
all-or-nothing upload, the idempotency protocol and the access rule live in the services.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import ClaimId, ClaimReader, CustomerUser, DispatcherDep, PhotoId, ServicesDep, SessionDep
from api.errors import error_responses
from api.routing import AuthorisedRoute
from api.schemas import (
    AcceptRequest,
    ClaimAccepted,
    ClaimList,
    ClaimView,
    FeedbackRequest,
    FeedbackView,
    PhotosAdded,
)
from api.views import claim_list, claim_view
from claims.lifecycle import ClaimState
from services import claims as claim_service
from services.claims import Accepted, ClaimForm, PhotoUpload
from services.idempotency import check_key
from storage.tables import Claim

router = APIRouter(prefix="/v1/claims", tags=["claims"], route_class=AuthorisedRoute)

# The longest a GET may wait for a decision: below the usual 60 s idle timeouts of proxies and phones.
MAX_WAIT_S = 30.0

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request (e.g. a missing or malformed Idempotency-Key).",
    401: "Missing or invalid API key.",
    403: "The API key's role may not do this.",
    404: "No such claim (or not yours).",
    409: "The claim's state does not allow this, or the request is still being processed.",
    413: "A photo (or the whole request) is too large.",
    422: "Invalid fields or photos; the message names each.",
    503: "A dependency (database, photo store) is unavailable; retry after Retry-After seconds.",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return error_responses(ERROR_DESCRIPTIONS, *codes)


def _uploads(photos: list[UploadFile]) -> list[PhotoUpload]:
    return [PhotoUpload(filename=p.filename, file=p.file) for p in photos]


def _accepted_response(result: Accepted) -> JSONResponse:
    headers: dict[str, str] = {}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    if result.location:
        headers["Location"] = result.location
    return JSONResponse(status_code=result.status_code, content=result.body, headers=headers)


# --------------------------------------------------------------------------------------------------
# Routes


def preferred_wait(prefer: str | None) -> float | None:
    """The seconds of an RFC 7240 ``Prefer: wait=N`` header (capped at MAX_WAIT_S), or None.
    Preferences are hints: anything else in the header, or a value that is not a number, is ignored."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.partition("=")
        if name.strip().lower() != "wait":
            continue
        try:
            seconds = float(value.split(";")[0].strip().strip('"'))
        except ValueError:
            return None
        return min(seconds, MAX_WAIT_S) if seconds > 0 else None  # nan > 0 is False
    return None


@router.post(
    "",
    status_code=202,
    response_model=ClaimAccepted,
    name="create_claim",
    summary="File a claim with photos of the damaged parcel",
    responses={
        **_errors(400, 401, 403, 409, 413, 422, 503),
        202: {"description": "Claim stored and queued for assessment; Location: the claim's URL."},
        201: {
            "model": ClaimView,
            "description": "Sent with `Prefer: wait=N`: the claim was decided within N seconds, and "
            "this is the claim as `GET` shows it (its offer, or why a person will look). Location: "
            "the claim's URL.",
        },
    },
)
async def create_claim(
    request: Request,
    user: CustomerUser,
    session: SessionDep,
    services: ServicesDep,
    dispatcher: DispatcherDep,
    photos: Annotated[
        list[UploadFile],
        File(
            description="1 to `max_photos` (8) JPEG, PNG, WebP or HEIC photos of the damage, each at most 15 MiB."
        ),
    ],
    tracking_number: Annotated[
        str,
        Form(
            description="The parcel's tracking number: 4-40 letters, digits or '-'.",
            examples=["SF1234567890"],
        ),
    ],
    declared_value: Annotated[
        str | None,
        Form(
            description="The declared (insured) value as plain decimal text, e.g. `199.99`. Optional once "
            "the carrier has sent the shipment: the value insured at shipping is what a payout is computed "
            "on, and a different value given here is recorded but never paid above it. Required while the "
            "shipment is not known yet (such a claim is accepted but reviewed by a person).",
            examples=["199.99"],
        ),
    ] = None,
    currency: Annotated[str, Form(description="ISO 4217 code of the declared value.")] = "CNY",
    description: Annotated[str | None, Form(description="What happened, at most 2000 characters.")] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required. A client-chosen key (1-255 printable ASCII characters), the same for "
            "every retry of one claim: a retry is answered with the first response.",
        ),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(
            alias="Prefer",
            description="`wait=N` (RFC 7240; N up to 30 seconds): answer with the decision when it is "
            "made within N seconds (201 and the claim as `GET` shows it), else 202 as without it. One "
            "request instead of an upload and a long poll. A replayed request is answered at once.",
            examples=["wait=20"],
        ),
    ] = None,
) -> Response:
    key = check_key(idempotency_key)

    def render(claim: Claim, photos_added: int) -> dict[str, Any]:
        url = str(request.app.url_path_for("get_claim", claim_id=claim.id))
        return ClaimAccepted(
            id=claim.id, status=ClaimState.SUBMITTED, url=url, expected_decision_at=claim.decision_due_at
        ).model_dump(mode="json")

    form = ClaimForm(tracking_number, declared_value, currency, description)
    result = await run_in_threadpool(
        claim_service.file_claim, session, services, dispatcher, user, key, form, _uploads(photos), render
    )
    wait_s = preferred_wait(prefer)
    claim_id = result.body.get("id")
    if wait_s is None or result.replayed or result.status_code != 202 or not isinstance(claim_id, str):
        return _accepted_response(result)
    claim = await claim_service.await_filed_decision(session, services, claim_id, user, wait_s)
    applied = {"Preference-Applied": f"wait={wait_s:g}"}
    if claim is None:  # not decided within the wait
        response = _accepted_response(result)
        response.headers.update(applied)
        return response
    view = await run_in_threadpool(claim_view, request, claim, user)
    return JSONResponse(
        status_code=201,
        content=view.model_dump(mode="json"),
        headers={"Location": result.location or "", **applied},
    )


@router.get(
    "",
    response_model=ClaimList,
    name="list_claims",
    summary="The customer's claims, newest first",
    responses=_errors(401, 403, 503),
)
def list_claims(
    request: Request,
    user: CustomerUser,
    session: SessionDep,
    status: Annotated[
        list[ClaimState] | None, Query(description="Only claims in these states (repeat the parameter).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=claim_service.MAX_PAGE, description="Claims per page.")] = 20,
    cursor: Annotated[
        str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
    ] = None,
) -> ClaimList:
    claims, next_cursor = claim_service.list_claims(session, user, status or [], cursor, limit)
    return claim_list(request, claims, next_cursor)


@router.get(
    "/{claim_id}",
    response_model=ClaimView,
    name="get_claim",
    summary="Where a claim stands, and why",
    responses=_errors(401, 404, 503),
)
async def get_claim(
    claim_id: ClaimId,
    request: Request,
    user: ClaimReader,
    session: SessionDep,
    services: ServicesDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_S,
            description="Seconds to wait for the decision while the claim is `submitted` or `assessing` "
            "(a long poll: the answer comes the moment the claim is decided, or after `wait` seconds with "
            "the claim as it then stands). 0, the default, answers at once. Use it instead of polling.",
        ),
    ] = 0,
) -> ClaimView:
    claim = await claim_service.follow_claim(session, services, claim_id, user, wait)
    return await run_in_threadpool(claim_view, request, claim, user)


@router.get(
    "/{claim_id}/photos/{photo_id}",
    name="get_claim_photo",
    summary="A photo of the claim (re-encoded JPEG, no metadata)",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "The served copy of the photo."},
        **_errors(401, 404, 503),
    },
)
def get_claim_photo(
    claim_id: ClaimId, photo_id: PhotoId, user: ClaimReader, session: SessionDep, services: ServicesDep
) -> Response:
    data, sha256 = claim_service.served_photo(session, services, claim_id, photo_id, user)
    return Response(
        content=data,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "private, max-age=86400, immutable",
            "ETag": f'"{sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.post(
    "/{claim_id}/photos",
    status_code=202,
    response_model=PhotosAdded,
    name="add_claim_photos",
    summary="Add the photos an adjuster asked for; the claim is assessed again",
    responses={
        **_errors(400, 401, 403, 404, 409, 413, 422, 503),
        202: {"description": "Photos stored and the claim queued for assessment; Location: the claim."},
    },
)
def add_claim_photos(
    claim_id: ClaimId,
    request: Request,
    user: CustomerUser,
    session: SessionDep,
    services: ServicesDep,
    dispatcher: DispatcherDep,
    photos: Annotated[
        list[UploadFile],
        File(description="1 to `max_photos` (8) more JPEG, PNG, WebP or HEIC photos, each at most 15 MiB."),
    ],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Required, as for filing a claim: the same key for every retry of one upload.",
        ),
    ] = None,
) -> Response:
    """Only while the claim is `needs_photos` (409 otherwise). Validated and stored like the photos of a
    new claim, all or nothing; the photos are appended (positions continue) and the claim moves to
    `assessing` in the same transaction; the assessment then grades every photo of the claim again."""
    key = check_key(idempotency_key)

    def render(claim: Claim, photos_added: int) -> dict[str, Any]:
        url = str(request.app.url_path_for("get_claim", claim_id=claim.id))
        return PhotosAdded(
            id=claim.id,
            status=ClaimState.ASSESSING,
            url=url,
            photos_added=photos_added,
            expected_decision_at=claim.decision_due_at,
        ).model_dump(mode="json")

    result = claim_service.add_photos(
        session, services, dispatcher, user, key, claim_id, _uploads(photos), render
    )
    return _accepted_response(result)


@router.post(
    "/{claim_id}/accept",
    response_model=ClaimView,
    name="accept_offer",
    summary="Accept the offer, as one of its options",
    responses=_errors(401, 403, 404, 409, 422, 503),
)
def accept_offer(
    claim_id: ClaimId, body: AcceptRequest, request: Request, user: CustomerUser, session: SessionDep
) -> ClaimView:
    return claim_view(request, claim_service.accept_offer(session, claim_id, user, body.option), user)


@router.post(
    "/{claim_id}/decline",
    response_model=ClaimView,
    name="decline_offer",
    summary="Decline the offer: an adjuster reviews the claim",
    responses=_errors(401, 403, 404, 409, 503),
)
def decline_offer(
    claim_id: ClaimId, request: Request, user: CustomerUser, session: SessionDep, services: ServicesDep
) -> ClaimView:
    return claim_view(request, claim_service.decline_offer(session, services, claim_id, user), user)


@router.post(
    "/{claim_id}/feedback",
    status_code=201,
    response_model=FeedbackView,
    name="give_feedback",
    summary="Rate how the claim was handled (once, after it is paid, reshipped or decided)",
    responses=_errors(401, 403, 404, 409, 422, 503),
)
def give_feedback(
    claim_id: ClaimId, body: FeedbackRequest, user: CustomerUser, session: SessionDep
) -> FeedbackView:
    row = claim_service.give_feedback(session, claim_id, user, body.rating, body.comment)
    return FeedbackView(
        claim_id=row.claim_id, rating=row.rating, comment=row.comment, created_at=row.created_at
    )
