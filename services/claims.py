"""The customer's use cases: file a claim with photos, add photos an adjuster asked for, follow a
claim, accept or decline its offer.

Filing a claim (`file_claim`) is all-or-nothing: either a claim exists with every photo stored, or
nothing does (no claim row, no photo row, no idempotency row, no object in the store). The steps, in
order:

1. fingerprint the request (user, normalised fields, each photo's SHA-256 in order);
2. claim the `Idempotency-Key` (`services.idempotency`): a finished request is answered again
   verbatim, a different one under the same key refused, one still running refused unless abandoned;
3. validate every field and photo before storing anything;
4. store the photos (content-addressed), remembering which objects this request created;
5. ONE transaction: the claim (via `apply_transition`, so the audit log has its first entry), its
   photos, and the idempotency row marked done with the 202 body;
6. only after the commit, hand the claim to the dispatcher;
7. the caller answers 202 with a Location header.

Any failure after step 2 releases the in-flight idempotency row (so the client may retry), discards
the objects this request created, and re-raises.

Adding the photos an adjuster asked for (`add_photos`, only in ``needs_photos``) goes through the same
steps: in its one transaction the photos are appended and the claim moves to ``assessing``; the
assessment is enqueued after the commit and grades every photo.

Everything here raises `claims.errors` (and `IllegalTransition`, `MoneyError`); nothing knows HTTP.
The answer's body is shaped by the caller (`Render`), since it is stored with the idempotency row.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import IO, Any

import anyio.to_thread
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from claims.errors import Conflict, NotFound, PayloadTooLarge, Unprocessable
from claims.integrity import ShipmentFacts, payout_basis
from claims.lifecycle import Actor, ClaimState, IllegalTransition
from claims.money import MoneyError, parse_amount, parse_currency
from claims.policy import ReasonCode
from claims.text import has_control_characters
from config import metrics
from models.preprocessing import INPUT_SIZE, ImageError
from services import payouts
from services.context import Services
from services.dispatch import Dispatcher
from services.idempotency import Idempotency, LostKey, Replay, Ticket, fingerprint
from services.integrity import shipment_facts
from services.photos import (
    PreparedPhoto,
    StoredPhoto,
    discard_objects,
    prepare_photo,
    served_photo_bytes,
    store_model_input,
    store_original,
)
from storage import claims as claim_rows
from storage import metering
from storage import photos as photo_rows
from storage import shipments as shipment_rows
from storage.review import mark_entered_review
from storage.tables import Claim, ClaimFeedback, User, new_id, utcnow
from storage.transitions import append_note, apply_transition

logger = logging.getLogger(__name__)

# The service norm: every claim is acknowledged at once and answered within an hour.
DECISION_WITHIN = timedelta(hours=1)
MAX_DESCRIPTION = 2000
_TRACKING_RE = re.compile(r"[A-Za-z0-9-]{4,40}", re.ASCII)
# Decoding photos of one upload in parallel (Pillow releases the GIL while decoding): at least four
# threads, so a claim's three or four photos decode at once and share the cores, instead of the last
# one starting when the first have finished.
_DECODERS = ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 2), thread_name_prefix="photo-decode")
_ATTEMPTS = 3


# --------------------------------------------------------------------------------------------------
# Inputs and outputs


@dataclass(frozen=True)
class PhotoUpload:
    """One uploaded photo as the service sees it: the client's file name and a readable binary file
    (spooled by the web layer; read here in chunks, never all at once before its size is known)."""

    filename: str | None
    file: IO[bytes]


@dataclass(frozen=True)
class ClaimForm:
    """The fields of a new claim as the client sent them (text: parsed and checked here)."""

    tracking_number: str
    declared_value: str | None = None  # the shipment's insured value decides; see file_claim
    currency: str = "CNY"
    description: str | None = None


@dataclass(frozen=True)
class Accepted:
    """A stored upload: the claim it concerns and the answer's body and Location (replayed=True when
    it is the stored answer of an earlier request with the same Idempotency-Key)."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False

    @property
    def location(self) -> str | None:
        url = self.body.get("url")
        return url if isinstance(url, str) else None


# render(claim, photos stored by this request) -> the 202 body (with its "url"), stored with the
# idempotency row in the same commit.
Render = Callable[[Claim, int], dict[str, Any]]


def _accepted(result: Replay) -> Accepted:
    return Accepted(status_code=result.status_code, body=result.body, replayed=True)


# --------------------------------------------------------------------------------------------------
# Loading with the access rule


def load_visible(session: Session, claim_id: str, user: User) -> Claim:
    """The claim if `user` may see it; NotFound otherwise (also for other customers' claims, so ids
    cannot be probed)."""
    claim = claim_rows.get_with_history(session, claim_id)
    if claim is None or (user.role == "customer" and claim.customer_id != user.id):
        raise NotFound("claim not found")
    return claim


def offer_lapsed(claim: Claim, now: datetime) -> bool:
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


def _with_retries(
    session: Session, claim_id: str, user: User, step: Callable[[Claim, datetime], None]
) -> Claim:
    """Load the claim, run `step(claim, now)` (which changes it and may raise), commit; re-run from a
    fresh read when a concurrent writer changed the claim first (optimistic locking)."""
    for _ in range(_ATTEMPTS):
        claim = load_visible(session, claim_id, user)
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
# Validation


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


def _check_fields(form: ClaimForm) -> _Fields:
    errors: list[dict[str, str]] = []
    tracking = form.tracking_number.strip()
    if not _TRACKING_RE.fullmatch(tracking):
        errors.append(_field_error("tracking_number", "must be 4 to 40 characters: letters, digits or '-'"))
    code = form.currency.strip().upper()
    amount: Decimal | None = None
    declared = (form.declared_value or "").strip()
    try:
        code = parse_currency(form.currency)
    except MoneyError as exc:
        errors.append(_field_error("currency", str(exc)))
    else:
        if declared:
            try:
                amount = parse_amount(declared, code)
            except MoneyError as exc:
                errors.append(_field_error("declared_value", str(exc)))
    text = form.description.strip() if form.description is not None else None
    if text is not None:
        if len(text) > MAX_DESCRIPTION:
            errors.append(
                _field_error("description", f"must be at most {MAX_DESCRIPTION} characters, got {len(text)}")
            )
        elif has_control_characters(text):
            errors.append(_field_error("description", "must not contain control characters"))
        elif INVALID_UTF8 in text:
            errors.append(
                _field_error("description", "must be valid UTF-8 text (it held bytes that are not)")
            )
    return _Fields(
        tracking_number=tracking,
        declared_value=amount,
        declared_text=declared,
        currency=code,
        description=text or None,
        errors=errors,
    )


def _name(upload: PhotoUpload, index: int) -> str:
    name = upload.filename or ""
    name = "".join(ch for ch in name if ch.isprintable())[:80]
    return f"photo {index + 1} ({name!r})" if name else f"photo {index + 1}"


def _size(upload: PhotoUpload) -> int:
    """The upload's size, from its end (the parser spooled it whole: nothing is read)."""
    upload.file.seek(0, io.SEEK_END)
    return upload.file.tell()


def _read(upload: PhotoUpload, limit: int) -> bytes | None:
    """The upload's bytes in one read (one copy); None when it is over `limit` bytes."""
    if _size(upload) > limit:
        return None
    upload.file.seek(0)
    return upload.file.read()


def _digest(upload: PhotoUpload, limit: int) -> str | None:
    """SHA-256 of the upload; None when it is over `limit` bytes (then nothing is read)."""
    if _size(upload) > limit:
        return None
    upload.file.seek(0)
    # One call over the whole photo (the GIL released once), not file_digest's 256 KiB loop.
    return hashlib.sha256(upload.file.read()).hexdigest()


def _summary(errors: list[dict[str, str]]) -> str:
    return "invalid claim: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)


def model_size(services: Services) -> int:
    """The input size of the model that will grade the photos (the bundled default's when no model
    can be loaded right now: the assessment then decodes again at the right size)."""
    try:
        return services.model().input_size
    except Exception:
        return INPUT_SIZE


def _prepare_photos(
    services: Services, photos: list[PhotoUpload], digests: list[str | None], errors: list[dict[str, str]]
) -> list[PreparedPhoto]:
    """Refuse the request unless every field and photo is acceptable (raises; stores nothing);
    otherwise each photo decoded once at the model's size (in parallel: Pillow's decoders release
    the GIL) with everything the decision needs from it."""
    settings = services.settings
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
    if errors:
        raise Unprocessable(_summary(errors), code="validation_error", details=errors)
    size = model_size(services)

    def prepare(upload: PhotoUpload, digest: str | None) -> PreparedPhoto | ImageError:
        data = _read(upload, settings.max_photo_bytes) or b""
        metrics.PHOTOS_RECEIVED.inc()
        metrics.PHOTO_BYTES.inc(len(data))
        try:
            with metrics.STAGE_SECONDS.labels("decode").time():
                return prepare_photo(
                    data,
                    model_size=size,
                    min_side=settings.min_photo_side,
                    sha256=digest,
                    max_full_decode_pixels=int(settings.max_photo_megapixels * 1_000_000),
                )
        except ImageError as exc:
            return exc

    if len(photos) > 1:
        results = list(_DECODERS.map(prepare, photos, digests))
    else:
        results = [prepare(photos[0], digests[0])]
    prepared: list[PreparedPhoto] = []
    for index, (upload, result) in enumerate(zip(photos, results, strict=True)):
        if isinstance(result, ImageError):
            errors.append(_field_error(f"photos[{index}]", f"{_name(upload, index)}: {result}"))
        else:
            prepared.append(result)
    if errors:
        raise Unprocessable(_summary(errors), code="validation_error", details=errors)
    for item in prepared:
        services.inputs.put(item.photo.sha256, size, item.model_input)
    return prepared


# --------------------------------------------------------------------------------------------------
# Storing an upload, all or nothing


def _idempotency(services: Services) -> Idempotency:
    return Idempotency(services.sessions, timedelta(hours=services.settings.idempotency_ttl_hours))


def _discard(services: Services, created: list[tuple[str, list[str]]]) -> None:
    """Delete the objects this request created, except those a committed photo row now uses (content
    addressing: a concurrent claim with the same bytes may have committed meanwhile)."""
    if not created:
        return
    in_use: set[str] = set()
    try:
        with services.sessions() as session:
            in_use = claim_rows.photo_shas_in_use(session, {sha for sha, keys in created if keys})
    except Exception:
        # The database is down: no other claim can have committed either; discard everything.
        logger.warning("could not check photo references before discarding objects", exc_info=True)
    discard_objects(services.store, [k for sha, keys in created if sha not in in_use for k in keys])


# write(stored photos, now) -> the claim whose rows are now in the session.
_Write = Callable[[list[StoredPhoto], datetime], Claim]


@dataclass(frozen=True)
class _Upload:
    ticket: Ticket
    request_hash: str
    photos: list[PhotoUpload]
    digests: list[str | None]
    errors: list[dict[str, str]]


def _store_and_commit(
    session: Session,
    services: Services,
    dispatcher: Dispatcher,
    upload: _Upload,
    write: _Write,
    render: Render,
    check: Callable[[], None] | None = None,
) -> Accepted:
    """Steps (3) to (6) of an upload holding an idempotency ticket (filing a claim, adding photos):
    `check()` (may refuse the request before any photo is read), validate every field and photo,
    store the photos, then ONE transaction: `write` the request's rows and mark the idempotency row
    done with the 202 body; only after the commit, enqueue the assessment. All or nothing: any
    failure releases the key, discards the objects this request stored, and re-raises."""
    settings = services.settings
    idempotency = _idempotency(services)
    created: list[tuple[str, list[str]]] = []
    try:
        if check is not None:
            check()
        # (3) Validate everything before storing anything: one decode per photo, at the model's size.
        prepared = _prepare_photos(services, upload.photos, upload.digests, upload.errors)

        # (4) Store the originals (the served copies are made on demand, off the critical path).
        stored: list[StoredPhoto] = []
        for item in prepared:
            keys = store_original(services.store, item)
            if settings.task_runner == "celery":  # a worker in another process grades the photo
                keys += store_model_input(services.store, item)
            created.append((item.photo.sha256, keys))
            stored.append(item.photo)

        # (5) One transaction: the request's rows, the idempotency row done.
        now = utcnow()
        claim = write(stored, now)
        claim_id = claim.id
        body = render(claim, len(stored))
        idempotency.complete(session, upload.ticket, status_code=202, body=body, claim_id=claim_id, now=now)
        session.commit()
    except LostKey:
        session.rollback()
        _discard(services, created)
        return _accepted(idempotency.after_lost(session, upload.ticket, upload.request_hash))
    except StaleDataError:
        # Another request changed the claim first (optimistic locking): nothing of ours is kept.
        session.rollback()
        idempotency.release(upload.ticket)
        _discard(services, created)
        raise Conflict(
            "the claim was changed by another request at the same time; retry", code="concurrent_update"
        ) from None
    except BaseException:
        session.rollback()
        idempotency.release(upload.ticket)
        _discard(services, created)
        raise

    # (6) Only now may a worker look for the claim.
    try:
        dispatcher.enqueue_assessment(claim_id)
    except Exception:
        # The claim is safely stored; the stale-claim sweeper picks up claims left in submitted or
        # assessing.
        logger.exception("could not enqueue the assessment of claim %s; the sweeper will retry", claim_id)
    return Accepted(status_code=202, body=body)


# --------------------------------------------------------------------------------------------------
# Use cases


def file_claim(
    session: Session,
    services: Services,
    dispatcher: Dispatcher,
    user: User,
    key: str,
    form: ClaimForm,
    photos: list[PhotoUpload],
    render: Render,
) -> Accepted:
    """File a new claim with its photos (the steps in the module docstring)."""
    user_id = user.id  # read now: a rollback below expires `user`
    limit = services.settings.max_photo_bytes

    # (1) Fingerprint.
    fields = _check_fields(form)
    digests = [_digest(p, limit) for p in photos]
    request_hash = fingerprint(
        {"user": user_id, **fields.fingerprint_part(), "photos": [d or "too-large" for d in digests]}
    )

    # (2) Idempotency.
    taken = _idempotency(services).begin(session, user_id, key, request_hash)
    if isinstance(taken, Replay):
        return _accepted(taken)

    def write(stored: list[StoredPhoto], now: datetime) -> Claim:
        # (5) The claim, its photos and its first audit entry. The value a payout is computed on is
        # the shipment's insured value when the shipment is known (never more than it); the app's
        # figure is recorded as `claimed_value` (see claims.integrity.payout_basis).
        shipment = known["shipment"]
        if shipment is not None:
            value, currency = payout_basis(fields.declared_value, fields.currency, shipment)
        else:
            assert fields.declared_value is not None  # check() refused the request otherwise
            value, currency = fields.declared_value, fields.currency
        claim = Claim(
            id=new_id(),
            customer_id=user_id,
            tracking_number=fields.tracking_number,
            declared_value=value,
            claimed_value=fields.declared_value,
            currency=currency,
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
        photo_rows.add_to_claim(session, claim, stored, first_position=1, now=now)
        return claim

    # The shipment as check() found it, for write(): looked up once per request.
    known: dict[str, ShipmentFacts | None] = {"shipment": None}

    def check() -> None:
        # One open claim per customer and parcel (the unique index `ux_claims_open_parcel` holds it
        # under concurrent requests too: see the IntegrityError below).
        if not fields.errors:
            _refuse_second_open_claim(session, user_id, fields.tracking_number)
            known["shipment"] = shipment_facts(shipment_rows.get(session, fields.tracking_number))
            if known["shipment"] is None and fields.declared_value is None:
                fields.errors.append(
                    _field_error(
                        "declared_value",
                        "required while the shipment is not known to us yet: the value declared when "
                        "the parcel was shipped",
                    )
                )

    # (3)-(6)
    upload = _Upload(taken, request_hash, photos, digests, fields.errors)
    try:
        return _store_and_commit(session, services, dispatcher, upload, write, render, check)
    except IntegrityError:
        # A concurrent request filed the open claim first: answered like the check above.
        with services.sessions() as other:
            _refuse_second_open_claim(other, user_id, fields.tracking_number)
        raise Conflict(
            "another request changed this parcel's claims at the same time; retry", code="concurrent_update"
        ) from None


def _refuse_second_open_claim(session: Session, customer_id: int, tracking_number: str) -> None:
    existing = claim_rows.open_claim_on_parcel(session, customer_id, tracking_number)
    if existing is not None:
        raise Conflict(
            f"you already have an open claim for parcel {tracking_number}: follow it, or add photos "
            "to it when an adjuster asks",
            code="claim_already_open",
            details={"claim_id": existing.id, "url": f"/v1/claims/{existing.id}", "state": existing.state},
        )


def _photos_not_requested(claim: Claim) -> Conflict:
    return Conflict(
        f"photos can be added only when an adjuster asks for them; the claim is {claim.state}",
        code="photos_not_requested",
        details={"state": claim.state},
    )


def add_photos(
    session: Session,
    services: Services,
    dispatcher: Dispatcher,
    user: User,
    key: str,
    claim_id: str,
    photos: list[PhotoUpload],
    render: Render,
) -> Accepted:
    """Only while the claim is `needs_photos` (Conflict otherwise). Validated and stored like the
    photos of a new claim, all or nothing; the photos are appended (positions continue) and the claim
    moves to `assessing` in the same transaction; the assessment then grades every photo again."""
    user_id = user.id  # read now: a rollback below expires `user`
    load_visible(session, claim_id, user)  # NotFound for a claim that is not theirs, before anything else
    digests = [_digest(p, services.settings.max_photo_bytes) for p in photos]
    request_hash = fingerprint(
        {"user": user_id, "claim": claim_id, "add_photos": [d or "too-large" for d in digests]}
    )
    taken = _idempotency(services).begin(session, user_id, key, request_hash)
    if isinstance(taken, Replay):
        return _accepted(taken)

    def check() -> None:
        claim = load_visible(session, claim_id, user)
        if claim.state != ClaimState.NEEDS_PHOTOS:
            raise _photos_not_requested(claim)

    def write(stored: list[StoredPhoto], now: datetime) -> Claim:
        claim = load_visible(session, claim_id, user)
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
        photo_rows.add_to_claim(session, claim, stored, first_position=start, now=now)
        claim.decision_due_at = now + DECISION_WITHIN
        return claim

    upload = _Upload(taken, request_hash, photos, digests, [])
    return _store_and_commit(session, services, dispatcher, upload, write, render, check)


def get_claim(session: Session, claim_id: str, user: User) -> Claim:
    """The claim as `user` may see it; an offer whose time has run out is expired first (and
    recorded), so the answer never shows an offer that can no longer be accepted."""

    def expire_if_lapsed(claim: Claim, now: datetime) -> None:
        if offer_lapsed(claim, now):
            _expire(session, claim, now)

    return _with_retries(session, claim_id, user, expire_if_lapsed)


# What an undecodable byte of a form field becomes (api.main decodes form text with replacement
# instead of Starlette's silent Latin-1 fallback), so free text can refuse it.
INVALID_UTF8 = "\ufffd"


MAX_PAGE = 100


def _cursor(claim: Claim) -> str:
    raw = f"{claim.created_at.isoformat()}|{claim.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _after(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, claim_id = raw.split("|", 1)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or len(claim_id) > 64:
            raise ValueError("not a cursor")
        return when, claim_id
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Unprocessable(
            "cursor is not one this service gave out; start again without it", code="invalid_cursor"
        ) from None


def list_claims(
    session: Session, user: User, states: list[ClaimState], cursor: str | None, limit: int
) -> tuple[list[Claim], str | None]:
    """A page of the customer's own claims, newest first; the cursor of the next page, or None on the
    last. A cursor is opaque to the client (the created_at and id of the page's last claim), so a
    claim filed while the customer pages through never shifts or repeats the pages after it."""
    if not 1 <= limit <= MAX_PAGE:
        raise Unprocessable(f"limit must be 1 to {MAX_PAGE}, got {limit}", code="validation_error")
    after = _after(cursor) if cursor else None
    page = claim_rows.customer_page(session, user.id, [s.value for s in states], after, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return page, (_cursor(page[-1]) if more and page else None)


# A claim the customer may rate: paid (or reshipped: also payout_instructed) or decided by a person.
_RATEABLE = frozenset({ClaimState.PAYOUT_INSTRUCTED, ClaimState.DENIED})
MAX_COMMENT = 1000


def give_feedback(
    session: Session, claim_id: str, user: User, rating: int, comment: str | None
) -> ClaimFeedback:
    """The customer's rating of a closed claim, once (a second is refused: 409); recorded in the
    claim's audit log too."""
    claim = load_visible(session, claim_id, user)
    if ClaimState(claim.state) not in _RATEABLE:
        raise Conflict("a claim can be rated once it is paid, reshipped or decided", code="feedback_not_yet")
    text = (comment or "").strip() or None
    if text is not None and (len(text) > MAX_COMMENT or has_control_characters(text)):
        raise Unprocessable(
            f"comment must be at most {MAX_COMMENT} characters, without control characters",
            code="validation_error",
        )
    now = utcnow()
    row = ClaimFeedback(claim_id=claim.id, rating=rating, comment=text, created_at=now)
    session.add(row)
    append_note(session, claim, Actor.CUSTOMER, user.id, "feedback", {"rating": rating}, now=now)
    metering.on_commit(session, metering.feedback_effect(rating))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("this claim has been rated already", code="feedback_already_given") from None
    return row


# The states in which the customer is waiting for the system's decision (what a waiting request
# waits out).
_BEING_ASSESSED = frozenset({ClaimState.SUBMITTED, ClaimState.ASSESSING})


async def follow_claim(
    session: Session, services: Services, claim_id: str, user: User, wait_s: float
) -> Claim:
    """`get_claim`; while the claim is still being assessed, wait up to `wait_s` seconds for the
    decision first (a long poll: one request instead of one every few tens of milliseconds).

    The database is read on worker threads (the event loop never blocks on it) and re-read on every
    wake-up (services.waiting); each read starts a fresh transaction, so a decision committed by
    another process is seen (SQLite would otherwise keep showing the read transaction's snapshot).
    """
    claim = await anyio.to_thread.run_sync(get_claim, session, claim_id, user)
    if claim.state not in _BEING_ASSESSED or wait_s <= 0:
        return claim
    await _wait_while_assessed(session, services, claim_id, wait_s)
    return await anyio.to_thread.run_sync(_reread, session, claim_id, user)


async def await_filed_decision(
    session: Session, services: Services, claim_id: str, user: User, wait_s: float
) -> Claim | None:
    """The upload's `Prefer: wait`: the claim `user` has just filed once it is decided within `wait_s`
    seconds, or None (the upload is then answered with its 202; a wait that runs out does not load
    the claim at all). The claim is theirs, so until it has moved on only its state is read (one
    column)."""
    assessed = await anyio.to_thread.run_sync(_still_assessed, session, claim_id)
    if assessed and await _wait_while_assessed(session, services, claim_id, wait_s):
        return None
    claim = await anyio.to_thread.run_sync(_reread, session, claim_id, user)
    # Assessed again since (photos added meanwhile): not decided, as far as the upload can tell.
    return None if claim.state in _BEING_ASSESSED else claim


async def _wait_while_assessed(session: Session, services: Services, claim_id: str, wait_s: float) -> bool:
    """Wait up to `wait_s` seconds for a claim being assessed to move on; whether it still has not.
    Between wake-ups only the state is re-read (one column)."""
    deadline = time.monotonic() + wait_s
    while (left := deadline - time.monotonic()) > 0:
        await services.changes.wait(claim_id, min(left, services.changes.recheck_s))
        if not await anyio.to_thread.run_sync(_still_assessed, session, claim_id):
            return False
    return True


def _still_assessed(session: Session, claim_id: str) -> bool:
    session.rollback()  # end the last read: its snapshot predates the decision
    return claim_rows.state_of(session, claim_id) in _BEING_ASSESSED


def _reread(session: Session, claim_id: str, user: User) -> Claim:
    session.rollback()
    return get_claim(session, claim_id, user)


def served_photo(
    session: Session, services: Services, claim_id: str, photo_id: str, user: User
) -> tuple[bytes, str]:
    """The served copy of a claim's photo (never the original: it may carry GPS) and its SHA-256."""
    claim = load_visible(session, claim_id, user)
    photo = next((p for p in claim.photos if p.id == photo_id), None)
    if photo is None:
        raise NotFound("photo not found")
    return served_photo_bytes(services.store, photo, services.settings.derivative_max_side), photo.sha256


def _offer_expired() -> Conflict:
    return Conflict(
        "the offer has expired; decline it to have an adjuster review your claim", code="offer_expired"
    )


def accept_offer(session: Session, claim_id: str, user: User, option: str) -> Claim:
    """Accept the offer as one of its options; the payout is instructed in the same transaction.
    Accepting again with the same option answers as before (a retry); another option is refused."""
    user_id = user.id
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
            raise _offer_expired()
        if state is not ClaimState.OFFERED:
            raise IllegalTransition(state, ClaimState.ACCEPTED, Actor.CUSTOMER)
        if offer_lapsed(claim, now):
            _expire(session, claim, now)
            expired = True  # committed by _with_retries, then refused
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
        payouts.instruct(session, claim, now)  # the finance outbox, in this same transaction

    claim = _with_retries(session, claim_id, user, accept)
    if expired:
        raise _offer_expired()
    return claim


def _declined_before(claim: Claim) -> bool:
    return any(
        e.to_state == ClaimState.DECLINED or ReasonCode.CUSTOMER_DECLINED in (e.reason_codes or [])
        for e in claim.events
        if e.action == "transition"
    )


def decline_offer(session: Session, services: Services, claim_id: str, user: User) -> Claim:
    """Decline the offer: an adjuster reviews the claim (a lapsed offer may be sent to review too)."""
    user_id = user.id

    def decline(claim: Claim, now: datetime) -> None:
        state = ClaimState(claim.state)
        reasons = [ReasonCode.CUSTOMER_DECLINED]
        if state is ClaimState.OFFERED and not offer_lapsed(claim, now):
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

    return _with_retries(session, claim_id, user, decline)
