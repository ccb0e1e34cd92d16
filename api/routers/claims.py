"""The mobile app's contract: file a claim with photos, follow it, accept or decline an offer.

Filing a claim (`POST /v1/claims`) is all-or-nothing: either a claim exists with every photo
stored, or nothing does (no claim row, no photo row, no idempotency row, no object in the store).
The steps, in order:

1. fingerprint the request (user, normalised fields, each photo's SHA-256 in order);
2. claim the `Idempotency-Key`: a finished request with the same fingerprint is answered again
   verbatim, a different request under the same key is refused (422), one still running is
   refused (409) unless it has been running for more than 5 minutes (abandoned: taken over);
   otherwise an `in_flight` row is committed;
3. validate every field and photo before storing anything;
4. store the photos (content-addressed), remembering which objects this request created;
5. ONE transaction: the claim (via `apply_transition`, so the audit log has its first entry),
   its photos, and the idempotency row marked done with the 202 body;
6. only after the commit, hand the claim to the dispatcher;
7. answer 202 with a Location header.

Any failure after step 2 deletes the in-flight idempotency row (so the client may retry),
discards the objects this request created, and re-raises (the error handlers answer 4xx/503).

Adding the photos an adjuster asked for (`POST /v1/claims/{id}/photos`, only in ``needs_photos``)
goes through the same steps (`_store_and_commit`): in its one transaction the photos are appended and
the claim moves to ``assessing``; the assessment is enqueued after the commit and grades every photo.
The claim view shows an adjuster's decision (approved, denied, needs_photos) but never who made it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Header, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.orm.exc import StaleDataError

from api.deps import CurrentUser, CustomerUser, DispatcherDep, ServicesDep, SessionDep, SettingsDep
from api.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, Unprocessable, error_responses
from api.schemas import (
    AcceptRequest,
    ApprovedView,
    ClaimAccepted,
    ClaimView,
    DeniedView,
    NeedsPhotosView,
    OfferView,
    OptionView,
    PhotosAdded,
    PhotoView,
    RetakeView,
    ReviewView,
    TimelineEntry,
)
from config.settings import Settings
from claims.lifecycle import DESCRIPTIONS, Actor, ClaimState, IllegalTransition
from claims.money import MoneyError, parse_amount, parse_currency
from claims.policy import ReasonCode
from models.preprocessing import ImageError
from storage.objects import ObjectNotFound
from services.photos import StoredPhoto, discard_objects, inspect_photo, store_photo
from storage.review import mark_entered_review
from storage.tables import Claim, IdempotencyKey, Photo, User, new_id, utcnow
from storage.transitions import apply_transition
from services.context import Services
from services.dispatch import Dispatcher

logger = logging.getLogger("claimlane.api.claims")

router = APIRouter(prefix="/v1/claims", tags=["claims"])

# The service norm: every claim is acknowledged at once and answered within an hour.
DECISION_WITHIN = timedelta(hours=1)
# An in-flight idempotency row older than this belongs to a request that died: it may be taken over.
IN_FLIGHT_ABANDONED_AFTER = timedelta(minutes=5)
IN_FLIGHT_RETRY_AFTER_S = 2
MAX_DESCRIPTION = 2000
_TRACKING_RE = re.compile(r"[A-Za-z0-9-]{4,40}", re.ASCII)
_IDEMPOTENCY_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}", re.ASCII)
_READ_CHUNK = 64 * 1024
_ATTEMPTS = 3

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


# --------------------------------------------------------------------------------------------------
# Views


def _actor_for(label: str, viewer: User) -> str:
    if viewer.role != "customer":
        return label
    if label.startswith("customer"):
        return "you"
    if label.startswith("adjuster") or label.startswith("admin"):
        return "adjuster"
    return "ClaimLane"


def _decision_view(
    claim: Claim, add_photos_url: str = ""
) -> OfferView | ReviewView | ApprovedView | DeniedView | NeedsPhotosView | None:
    decision = claim.decision
    if not decision:
        return None
    kind = decision.get("kind")
    explanation = str(decision.get("explanation", ""))
    if kind == "approved":  # an adjuster's decisions (services.reviewing): never who made them
        return ApprovedView(
            amount=_money(Decimal(str(decision["amount"])), claim.currency) or "0",
            currency=str(decision.get("currency") or claim.currency),
            reason=decision.get("reason"),
            explanation=explanation,
        )
    if kind == "denied":
        return DeniedView(reason=str(decision.get("reason") or ""), explanation=explanation)
    if kind == "needs_photos":
        return NeedsPhotosView(
            reason=str(decision.get("reason") or ""), explanation=explanation, add_photos_url=add_photos_url
        )
    if kind == "offer":
        return OfferView(
            amount=str(decision["amount"]),
            currency=str(decision.get("currency") or claim.currency),
            options=[
                OptionView(kind=o["kind"], amount=o.get("amount"), description=o.get("description", ""))
                for o in decision.get("options", [])
            ],
            expires_at=claim.offer_expires_at,
            explanation=str(decision.get("explanation", "")),
        )
    return ReviewView(
        reasons=[str(r) for r in decision.get("reasons", [])],
        explanation=str(decision.get("explanation", "")),
        retake=[RetakeView(**r) for r in decision.get("retake", [])],
    )


def _money(value: Decimal | None, currency: str) -> str | None:
    if value is None:
        return None
    from claims.money import quantize

    return str(quantize(value, currency))


def _expected_decision_at(claim: Claim, state: ClaimState) -> datetime | None:
    """When the customer can expect a decision: the deadline while one is pending (in review: the
    decision deadline of `claims.deadlines`), nothing while we wait for their photos, and when it
    was made once an adjuster has decided."""
    if state is ClaimState.NEEDS_PHOTOS:
        return None
    if claim.decided_at is not None and state in (
        ClaimState.APPROVED,
        ClaimState.DENIED,
        ClaimState.PAYOUT_INSTRUCTED,
    ):
        return claim.decided_at
    return claim.decision_due_at


def claim_view(request: Request, claim: Claim, viewer: User) -> ClaimView:
    state = ClaimState(claim.state)
    add_photos_url = str(request.app.url_path_for("add_claim_photos", claim_id=claim.id))
    return ClaimView(
        id=claim.id,
        status=state,
        status_description=DESCRIPTIONS[state],
        tracking_number=claim.tracking_number,
        declared_value=_money(claim.declared_value, claim.currency),
        currency=claim.currency,
        description=claim.description,
        created_at=claim.created_at,
        photos=[
            PhotoView(
                id=p.id,
                position=p.position,
                url=str(request.app.url_path_for("get_claim_photo", claim_id=claim.id, photo_id=p.id)),
                grade=p.grade,
                grade_probs=p.grade_probs,
            )
            for p in sorted(claim.photos, key=lambda p: p.position)
        ],
        claim_grade=claim.claim_grade,
        claim_probs=claim.claim_probs,
        confidence=None if claim.confidence is None else str(claim.confidence),
        decision=_decision_view(claim, add_photos_url),
        expected_decision_at=_expected_decision_at(claim, state),
        accepted_option=claim.accepted_option,
        payout_amount=_money(claim.payout_amount, claim.currency),
        timeline=[
            TimelineEntry(
                at=e.at,
                from_state=e.from_state,
                to_state=e.to_state,
                actor=_actor_for(e.actor, viewer),
                reasons=list(e.reason_codes or []),
            )
            for e in sorted(claim.events, key=lambda e: e.id)
            if e.action == "transition" and e.to_state
        ],
    )


# --------------------------------------------------------------------------------------------------
# Loading with the access rule


def _load_visible(session: Session, claim_id: str, user: User) -> Claim:
    """The claim if `user` may see it; 404 otherwise (also for other customers' claims, so ids
    cannot be probed)."""
    claim = session.execute(
        select(Claim)
        .where(Claim.id == claim_id)
        .options(selectinload(Claim.photos), selectinload(Claim.events))
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if claim is None or (user.role == "customer" and claim.customer_id != user.id):
        raise NotFound("claim not found")
    return claim


def _offer_lapsed(claim: Claim, now: datetime) -> bool:
    return (
        claim.state == ClaimState.OFFERED
        and claim.offer_expires_at is not None
        and claim.offer_expires_at <= now
    )


def _expire(session: Session, claim: Claim, now: datetime) -> None:
    apply_transition(
        session,
        claim,
        ClaimState.EXPIRED,
        Actor.SYSTEM,
        reasons=[ReasonCode.OFFER_EXPIRED],
        policy_version=claim.policy_version,
        now=now,
    )


def _with_retries(session: Session, claim_id: str, user: User, step) -> Claim:
    """Load the claim, run `step(claim, now)` (which changes it and may raise), commit; re-run from a
    fresh read when a concurrent writer changed the claim first (optimistic locking)."""
    for _ in range(_ATTEMPTS):
        claim = _load_visible(session, claim_id, user)
        try:
            step(claim, utcnow())
            session.commit()
        except StaleDataError:
            session.rollback()
            continue
        return claim
    raise Conflict(
        "the claim was changed by another request at the same time; retry", code="concurrent_update"
    )


# --------------------------------------------------------------------------------------------------
# POST /v1/claims: validation helpers


@dataclass
class _Fields:
    tracking_number: str
    declared_value: Decimal | None
    declared_text: str
    currency: str
    description: str | None
    errors: list[dict[str, str]] = field(default_factory=list)

    def fingerprint_part(self) -> dict[str, Any]:
        return {
            "tracking_number": self.tracking_number,
            "declared_value": str(self.declared_value)
            if self.declared_value is not None
            else self.declared_text,
            "currency": self.currency,
            "description": self.description,
        }


def _field_error(name: str, message: str) -> dict[str, str]:
    return {"field": name, "location": "body", "message": message, "type": "value_error"}


def _check_fields(
    tracking_number: str, declared_value: str, currency: str, description: str | None
) -> _Fields:
    errors: list[dict[str, str]] = []
    tracking = tracking_number.strip()
    if not _TRACKING_RE.fullmatch(tracking):
        errors.append(_field_error("tracking_number", "must be 4 to 40 characters: letters, digits or '-'"))
    code = currency.strip().upper()
    amount: Decimal | None = None
    try:
        code = parse_currency(currency)
    except MoneyError as exc:
        errors.append(_field_error("currency", str(exc)))
    else:
        try:
            amount = parse_amount(declared_value, code)
        except MoneyError as exc:
            errors.append(_field_error("declared_value", str(exc)))
    text = description.strip() if description is not None else None
    if text is not None:
        if len(text) > MAX_DESCRIPTION:
            errors.append(
                _field_error("description", f"must be at most {MAX_DESCRIPTION} characters, got {len(text)}")
            )
        elif any(ord(ch) < 32 and ch not in "\t\n\r" for ch in text) or "\x7f" in text:
            errors.append(_field_error("description", "must not contain control characters"))
    return _Fields(
        tracking_number=tracking,
        declared_value=amount,
        declared_text=declared_value.strip(),
        currency=code,
        description=text or None,
        errors=errors,
    )


def _name(upload: UploadFile, index: int) -> str:
    name = upload.filename or ""
    name = "".join(ch for ch in name if ch.isprintable())[:80]
    return f"photo {index + 1} ({name!r})" if name else f"photo {index + 1}"


def _read(upload: UploadFile, limit: int) -> bytes | None:
    """The upload's bytes, read in chunks; None as soon as it is over `limit` bytes."""
    upload.file.seek(0)
    chunks: list[bytes] = []
    total = 0
    while chunk := upload.file.read(_READ_CHUNK):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _digest(upload: UploadFile, limit: int) -> str | None:
    """SHA-256 of the upload; None when it is over `limit` bytes (reading stops there)."""
    upload.file.seek(0)
    digest = hashlib.sha256()
    total = 0
    while chunk := upload.file.read(_READ_CHUNK):
        total += len(chunk)
        if total > limit:
            return None
        digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(user_id: int, fields: _Fields, digests: list[str | None]) -> str:
    payload = {"user": user_id, **fields.fingerprint_part(), "photos": [d or "too-large" for d in digests]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def _validate_photos(
    settings: Settings, photos: list[UploadFile], digests: list[str | None], errors: list[dict[str, str]]
) -> None:
    """Refuse the request unless every field and photo is acceptable (raises; stores nothing)."""
    count = len(photos)
    if count == 0 or count > settings.max_photos:
        errors.append(_field_error("photos", f"send 1 to {settings.max_photos} photos, got {count}"))
        raise Unprocessable(_summary(errors), code="validation_error", details=errors)
    too_large = [_name(p, i) for i, (p, d) in enumerate(zip(photos, digests, strict=True)) if d is None]
    if too_large:
        limit_mib = settings.max_photo_bytes / (1024 * 1024)
        raise PayloadTooLarge(
            f"{', '.join(too_large)} larger than the limit of {settings.max_photo_bytes} "
            f"bytes ({limit_mib:.1f} MiB) per photo",
            code="photo_too_large",
            details={"max_photo_bytes": settings.max_photo_bytes, "photos": too_large},
        )
    for index, upload in enumerate(photos):
        data = _read(upload, settings.max_photo_bytes)
        try:
            inspect_photo(data or b"", min_side=settings.min_photo_side)
        except ImageError as exc:
            errors.append(_field_error(f"photos[{index}]", f"{_name(upload, index)}: {exc}"))
    if errors:
        raise Unprocessable(_summary(errors), code="validation_error", details=errors)


def _summary(errors: list[dict[str, str]]) -> str:
    return "invalid claim: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)


# --------------------------------------------------------------------------------------------------
# POST /v1/claims: idempotency


@dataclass(frozen=True)
class _Ticket:
    """Our hold on an idempotency key: its row and the created_at we set (our ownership token)."""

    row_id: int
    started: datetime


def _replay(row: IdempotencyKey) -> JSONResponse:
    body = row.response_body or {}
    headers = {"Idempotent-Replayed": "true"}
    if isinstance(body.get("url"), str):
        headers["Location"] = body["url"]
    return JSONResponse(status_code=row.status_code or 200, content=body, headers=headers)


def _take_key(
    session: Session, settings: Settings, user_id: int, key: str, fingerprint: str
) -> _Ticket | JSONResponse:
    """Apply the idempotency rules: a ticket to go ahead, or the stored response to replay."""
    for _ in range(_ATTEMPTS):
        now = utcnow()
        row = session.scalar(
            select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
        )
        if (
            row is not None
            and row.state == "done"
            and row.created_at < now - timedelta(hours=settings.idempotency_ttl_hours)
        ):
            session.delete(row)  # remembered long enough: the key is free again
            session.commit()
            row = None
        if row is None:
            row = IdempotencyKey(
                user_id=user_id, key=key, request_hash=fingerprint, state="in_flight", created_at=now
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:  # a concurrent request with the same key won the insert
                session.rollback()
                continue
            return _Ticket(row.id, now)
        if row.request_hash != fingerprint:
            raise Unprocessable(
                "Idempotency-Key already used for a different request", code="idempotency_key_reused"
            )
        if row.state == "done":
            return _replay(row)
        if row.created_at > now - IN_FLIGHT_ABANDONED_AFTER:
            raise Conflict(
                "a request with this Idempotency-Key is still being processed; retry later",
                code="request_in_progress",
                retry_after=IN_FLIGHT_RETRY_AFTER_S,
            )
        # Abandoned (its request died): take it over, unless another retry just did.
        taken = session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.id == row.id,
                IdempotencyKey.state == "in_flight",
                IdempotencyKey.created_at == row.created_at,
            )
            .values(created_at=now)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        if taken.rowcount == 1:
            logger.info("taking over abandoned idempotency key %s of user %s", row.id, user_id)
            return _Ticket(row.id, now)
    raise Conflict(
        "a request with this Idempotency-Key is still being processed; retry later",
        code="request_in_progress",
        retry_after=IN_FLIGHT_RETRY_AFTER_S,
    )


class _LostKey(Exception):
    """Our in-flight row was taken over by a retry (we were presumed dead): do not commit."""


def _release_key(services: Services, ticket: _Ticket) -> None:
    """Delete our in-flight row (best effort: if the database is down it stays, and a retry takes
    it over once it is 5 minutes old)."""
    try:
        with services.sessions() as session:
            session.execute(
                delete(IdempotencyKey)
                .where(
                    IdempotencyKey.id == ticket.row_id,
                    IdempotencyKey.state == "in_flight",
                    IdempotencyKey.created_at == ticket.started,
                )
                .execution_options(synchronize_session=False)
            )
            session.commit()
    except Exception:
        logger.warning("could not release idempotency key row %s", ticket.row_id, exc_info=True)


def _discard(services: Services, created: list[tuple[str, list[str]]]) -> None:
    """Delete the objects this request created, except those a committed photo row now uses (content
    addressing: a concurrent claim with the same bytes may have committed meanwhile)."""
    if not created:
        return
    shas = {sha for sha, keys in created if keys}
    in_use: set[str] = set()
    try:
        with services.sessions() as session:
            in_use = set(session.scalars(select(Photo.sha256).where(Photo.sha256.in_(shas))).all())
    except Exception:
        # The database is down: no other claim can have committed either; discard everything.
        logger.warning("could not check photo references before discarding objects", exc_info=True)
    discard_objects(services.store, [k for sha, keys in created if sha not in in_use for k in keys])


def _check_idempotency_key(value: str | None) -> str:
    if value is None or not value.strip():
        raise BadRequest(
            "the Idempotency-Key header is required (any unique value per request, reused on retries)",
            code="idempotency_key_missing",
        )
    if not _IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise BadRequest(
            "Idempotency-Key must be 1 to 255 printable ASCII characters", code="idempotency_key_invalid"
        )
    return value


def _add_photos(claim: Claim, stored: list[StoredPhoto], *, first_position: int, now: datetime) -> None:
    for position, photo in enumerate(stored, start=first_position):
        claim.photos.append(Photo.from_stored(photo, position=position, created_at=now))


# write(stored photos, now) -> (claim id, 202 body, Location): the request's rows, in the session.
_Write = Callable[[list[StoredPhoto], datetime], tuple[str, dict[str, Any], str]]


def _store_and_commit(
    session: Session,
    services: Services,
    settings: Settings,
    dispatcher: Dispatcher,
    ticket: _Ticket,
    fingerprint: str,
    photos: list[UploadFile],
    digests: list[str | None],
    errors: list[dict[str, str]],
    write: _Write,
    check: Callable[[], None] | None = None,
) -> Response:
    """Steps (3) to (7) of an upload holding the idempotency `ticket` (filing a claim, adding photos):
    `check()` (may refuse the request before any photo is read), validate every field and photo,
    store the photos, then ONE transaction: `write` the request's rows and mark the idempotency row
    done with the 202 body; only after the commit, enqueue the assessment. All or nothing: any
    failure releases the key, discards the objects this request stored, and re-raises."""
    created: list[tuple[str, list[str]]] = []
    try:
        if check is not None:
            check()
        # (3) Validate everything before storing anything.
        _validate_photos(settings, photos, digests, errors)

        # (4) Store the photos.
        stored: list[StoredPhoto] = []
        for upload in photos:
            data = _read(upload, settings.max_photo_bytes) or b""
            photo, keys = store_photo(
                services.store, data, max_side=settings.derivative_max_side, min_side=settings.min_photo_side
            )
            created.append((photo.sha256, keys))
            stored.append(photo)

        # (5) One transaction: the request's rows, the idempotency row done.
        now = utcnow()
        claim_id, body, url = write(stored, now)
        done = session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.id == ticket.row_id,
                IdempotencyKey.state == "in_flight",
                IdempotencyKey.created_at == ticket.started,
            )
            .values(state="done", status_code=202, response_body=body, claim_id=claim_id, completed_at=now)
            .execution_options(synchronize_session=False)
        )
        if done.rowcount != 1:
            raise _LostKey()
        session.commit()
    except _LostKey:
        session.rollback()
        _discard(services, created)
        logger.warning("idempotency key %s was taken over while this request ran", ticket.row_id)
        row = session.get(IdempotencyKey, ticket.row_id)
        if row is not None and row.state == "done" and row.request_hash == fingerprint:
            return _replay(row)
        raise Conflict(
            "a request with this Idempotency-Key is still being processed; retry later",
            code="request_in_progress",
            retry_after=IN_FLIGHT_RETRY_AFTER_S,
        ) from None
    except StaleDataError:
        # Another request changed the claim first (optimistic locking): nothing of ours is kept.
        session.rollback()
        _release_key(services, ticket)
        _discard(services, created)
        raise Conflict(
            "the claim was changed by another request at the same time; retry", code="concurrent_update"
        ) from None
    except BaseException:
        session.rollback()
        _release_key(services, ticket)
        _discard(services, created)
        raise

    # (6) Only now may a worker look for the claim.
    try:
        dispatcher.enqueue_assessment(claim_id)
    except Exception:
        # The claim is safely stored; the stale-claim sweeper picks up claims left in submitted or
        # assessing.
        logger.exception("could not enqueue the assessment of claim %s; the sweeper will retry", claim_id)

    # (7) Accepted.
    return JSONResponse(status_code=202, content=body, headers={"Location": url})


# --------------------------------------------------------------------------------------------------
# Routes


@router.post(
    "",
    status_code=202,
    response_model=ClaimAccepted,
    name="create_claim",
    summary="File a claim with photos of the damaged parcel",
    responses={
        **_errors(400, 401, 403, 409, 413, 422, 503),
        202: {"description": "Claim stored and queued for assessment; Location: the claim's URL."},
    },
)
def create_claim(
    request: Request,
    user: CustomerUser,
    session: SessionDep,
    services: ServicesDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    photos: Annotated[
        list[UploadFile],
        File(
            description="1 to `max_photos` (8) JPEG, PNG or WebP photos of the damage, each at most 15 MiB."
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
        str,
        Form(
            description="The declared (insured) value as plain decimal text, e.g. `199.99`.",
            examples=["199.99"],
        ),
    ],
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
) -> Response:
    key = _check_idempotency_key(idempotency_key)
    user_id = user.id  # read now: a rollback below expires `user`

    # (1) Fingerprint.
    fields = _check_fields(tracking_number, declared_value, currency, description)
    digests = [_digest(p, settings.max_photo_bytes) for p in photos]
    fingerprint = _fingerprint(user_id, fields, digests)

    # (2) Idempotency.
    taken = _take_key(session, settings, user_id, key, fingerprint)
    if isinstance(taken, JSONResponse):
        return taken

    def write(stored: list[StoredPhoto], now: datetime) -> tuple[str, dict[str, Any], str]:
        # (5) The claim, its photos and its first audit entry.
        claim_id = new_id()
        url = str(request.app.url_path_for("get_claim", claim_id=claim_id))
        claim = Claim(
            id=claim_id,
            customer_id=user_id,
            tracking_number=fields.tracking_number,
            declared_value=fields.declared_value,
            currency=fields.currency,
            description=fields.description,
            created_at=now,
            updated_at=now,
            state_changed_at=now,
            decision_due_at=now + DECISION_WITHIN,
        )
        session.add(claim)
        apply_transition(
            session,
            claim,
            ClaimState.SUBMITTED,
            Actor.CUSTOMER,
            user_id=user_id,
            now=now,
            detail={"photos": len(stored)},
        )
        _add_photos(claim, stored, first_position=1, now=now)
        body = ClaimAccepted(
            id=claim_id, status=ClaimState.SUBMITTED, url=url, expected_decision_at=claim.decision_due_at
        ).model_dump(mode="json")
        return claim_id, body, url

    # (3)-(7)
    return _store_and_commit(
        session,
        services,
        settings,
        dispatcher,
        taken,
        fingerprint,
        photos,
        digests,
        fields.errors,
        write,
    )


@router.get(
    "/{claim_id}",
    response_model=ClaimView,
    name="get_claim",
    summary="Where a claim stands, and why",
    responses=_errors(401, 404, 503),
)
def get_claim(claim_id: str, request: Request, user: CurrentUser, session: SessionDep) -> ClaimView:
    def expire_if_lapsed(claim: Claim, now: datetime) -> None:
        if _offer_lapsed(claim, now):
            _expire(session, claim, now)

    claim = _with_retries(session, claim_id, user, expire_if_lapsed)
    return claim_view(request, claim, user)


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
    claim_id: str, photo_id: str, user: CurrentUser, session: SessionDep, services: ServicesDep
) -> Response:
    claim = _load_visible(session, claim_id, user)
    photo = next((p for p in claim.photos if p.id == photo_id), None)
    if photo is None:
        raise NotFound("photo not found")
    try:
        data = services.store.get(photo.derivative_key)  # never the original: it may carry GPS
    except ObjectNotFound:
        logger.error("claim %s photo %s: derivative %s is missing", claim.id, photo.id, photo.derivative_key)
        raise NotFound("photo not available") from None
    return Response(
        content=data,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "private, max-age=86400, immutable",
            "ETag": f'"{photo.sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _photos_fingerprint(user_id: int, claim_id: str, digests: list[str | None]) -> str:
    payload = {"user": user_id, "claim": claim_id, "add_photos": [d or "too-large" for d in digests]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def _photos_not_requested(claim: Claim) -> Conflict:
    return Conflict(
        f"photos can be added only when an adjuster asks for them; the claim is {claim.state}",
        code="photos_not_requested",
        details={"state": claim.state},
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
    claim_id: str,
    request: Request,
    user: CustomerUser,
    session: SessionDep,
    services: ServicesDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
    photos: Annotated[
        list[UploadFile],
        File(description="1 to `max_photos` (8) more JPEG, PNG or WebP photos, each at most 15 MiB."),
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
    key = _check_idempotency_key(idempotency_key)
    user_id = user.id  # read now: a rollback below expires `user`
    _load_visible(session, claim_id, user)  # 404 for a claim that is not theirs, before anything else
    digests = [_digest(p, settings.max_photo_bytes) for p in photos]
    fingerprint = _photos_fingerprint(user_id, claim_id, digests)
    taken = _take_key(session, settings, user_id, key, fingerprint)
    if isinstance(taken, JSONResponse):
        return taken

    def check() -> None:
        claim = _load_visible(session, claim_id, user)
        if claim.state != ClaimState.NEEDS_PHOTOS:
            raise _photos_not_requested(claim)

    def write(stored: list[StoredPhoto], now: datetime) -> tuple[str, dict[str, Any], str]:
        claim = _load_visible(session, claim_id, user)
        if claim.state != ClaimState.NEEDS_PHOTOS:
            raise _photos_not_requested(claim)
        apply_transition(
            session,
            claim,
            ClaimState.ASSESSING,
            Actor.CUSTOMER,
            user_id=user_id,
            reasons=[ReasonCode.PHOTOS_ADDED],
            detail={"photos": len(stored)},
            now=now,
        )
        start = max((p.position for p in claim.photos), default=0) + 1
        _add_photos(claim, stored, first_position=start, now=now)
        claim.decision_due_at = now + DECISION_WITHIN
        url = str(request.app.url_path_for("get_claim", claim_id=claim.id))
        body = PhotosAdded(
            id=claim.id,
            status=ClaimState.ASSESSING,
            url=url,
            photos_added=len(stored),
            expected_decision_at=claim.decision_due_at,
        ).model_dump(mode="json")
        return claim.id, body, url

    return _store_and_commit(
        session, services, settings, dispatcher, taken, fingerprint, photos, digests, [], write, check
    )


@router.post(
    "/{claim_id}/accept",
    response_model=ClaimView,
    name="accept_offer",
    summary="Accept the offer, as one of its options",
    responses=_errors(401, 403, 404, 409, 422, 503),
)
def accept_offer(
    claim_id: str, body: AcceptRequest, request: Request, user: CustomerUser, session: SessionDep
) -> ClaimView:
    user_id = user.id
    option = body.option
    expired = False

    def accept(claim: Claim, now: datetime) -> None:
        nonlocal expired
        expired = False
        state = ClaimState(claim.state)
        if state in (ClaimState.ACCEPTED, ClaimState.PAYOUT_INSTRUCTED) and claim.accepted_option:
            if claim.accepted_option == option:
                return  # the same acceptance again: answered as before
            raise Conflict(
                f"the offer was already accepted as {claim.accepted_option}", code="offer_already_accepted"
            )
        if state is ClaimState.EXPIRED:
            raise Conflict(
                "the offer has expired; decline it to have an adjuster review your claim",
                code="offer_expired",
            )
        if state is not ClaimState.OFFERED:
            raise IllegalTransition(state, ClaimState.ACCEPTED, Actor.CUSTOMER)
        if _offer_lapsed(claim, now):
            _expire(session, claim, now)
            expired = True  # committed by _with_retries, then answered 409
            return
        decision = claim.decision or {}
        options = {o.get("kind"): o for o in decision.get("options", [])}
        if decision.get("kind") != "offer" or option not in options:
            offered = ", ".join(str(k) for k in options) or "none"
            raise Unprocessable(
                f"option {option!r} is not part of this offer (offered: {offered})", code="option_not_offered"
            )
        if option == "cash":
            amount: Decimal | None = Decimal(str(decision["amount"]))
        elif options[option].get("amount") is not None:
            amount = Decimal(str(options[option]["amount"]))
        else:
            amount = None
        detail = {
            "option": option,
            "payout_amount": None if amount is None else str(amount),
            "currency": claim.currency,
        }
        apply_transition(
            session,
            claim,
            ClaimState.ACCEPTED,
            Actor.CUSTOMER,
            user_id=user_id,
            detail=detail,
            policy_version=claim.policy_version,
            now=now,
        )
        claim.accepted_option = option
        claim.payout_amount = amount
        apply_transition(
            session,
            claim,
            ClaimState.PAYOUT_INSTRUCTED,
            Actor.SYSTEM,
            detail=detail,
            policy_version=claim.policy_version,
            now=now,
        )

    claim = _with_retries(session, claim_id, user, accept)
    if expired:
        raise Conflict(
            "the offer has expired; decline it to have an adjuster review your claim", code="offer_expired"
        )
    return claim_view(request, claim, user)


def _declined_before(claim: Claim) -> bool:
    return any(
        e.to_state == ClaimState.DECLINED or ReasonCode.CUSTOMER_DECLINED in (e.reason_codes or [])
        for e in claim.events
        if e.action == "transition"
    )


@router.post(
    "/{claim_id}/decline",
    response_model=ClaimView,
    name="decline_offer",
    summary="Decline the offer: an adjuster reviews the claim",
    responses=_errors(401, 403, 404, 409, 503),
)
def decline_offer(
    claim_id: str, request: Request, user: CustomerUser, session: SessionDep, services: ServicesDep
) -> ClaimView:
    user_id = user.id

    def decline(claim: Claim, now: datetime) -> None:
        state = ClaimState(claim.state)
        reasons = [ReasonCode.CUSTOMER_DECLINED]
        if state is ClaimState.OFFERED and not _offer_lapsed(claim, now):
            apply_transition(session, claim, ClaimState.DECLINED, Actor.CUSTOMER, user_id=user_id, now=now)
            apply_transition(session, claim, ClaimState.IN_REVIEW, Actor.SYSTEM, reasons=reasons, now=now)
        elif state in (ClaimState.OFFERED, ClaimState.EXPIRED):
            # A lapsed offer cannot be declined, but the customer may ask for a review of it.
            if state is ClaimState.OFFERED:
                _expire(session, claim, now)
            apply_transition(
                session,
                claim,
                ClaimState.IN_REVIEW,
                Actor.CUSTOMER,
                user_id=user_id,
                reasons=reasons,
                now=now,
            )
        elif _declined_before(claim):
            return  # already declined: answered as before
        else:
            raise IllegalTransition(state, ClaimState.DECLINED, Actor.CUSTOMER)
        mark_entered_review(session, claim, now, services.deadlines)

    claim = _with_retries(session, claim_id, user, decline)
    return claim_view(request, claim, user)
