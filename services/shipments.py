"""The carrier's shipment records: one upsert, a batch import, and the re-check of waiting claims.

The insured value (保价) is fixed when a parcel is shipped, so it comes from the carrier's own systems,
never from the customer: an integration user pushes each shipment (`PUT /v1/shipments/{tn}`), or a
batch (`POST /v1/shipments:import`, `claimlane shipments import FILE`).

- Validation is strict and names every problem (a batch: every bad row, by its 1-based row number).
- A batch is all or nothing: one bad row and nothing is written.
- A repeated upsert of the same record changes nothing (idempotent).
- When a shipment arrives, claims on its tracking number that went to review ONLY because it was not
  known yet are assessed again (in_review -> assessing, after the commit), so a feed that lags does
  not cost the customer the fast lane. Claims held for any other reason stay with their adjuster.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from claims.errors import Conflict, Unprocessable
from claims.integrity import ShipmentStatus
from claims.lifecycle import Actor, ClaimState
from claims.money import MoneyError, parse_amount, parse_currency
from claims.policy import ReasonCode
from services.dispatch import Dispatcher
from storage import claims as claim_rows
from storage import shipments as shipment_rows
from storage.tables import Shipment, utcnow
from storage.transitions import apply_transition

logger = logging.getLogger(__name__)

TRACKING_RE = re.compile(r"[A-Za-z0-9-]{4,40}", re.ASCII)
MAX_BATCH_ROWS = 10_000
_TEXT_LIMITS = {"sender_ref": 120, "recipient_ref": 120, "service": 40}
COLUMNS = ("tracking_number", "declared_value", "currency", "status", "shipped_at", "delivered_at") + tuple(
    _TEXT_LIMITS
)
_REQUIRED = ("declared_value", "currency", "status")


@dataclass(frozen=True)
class ShipmentInput:
    """A checked shipment record."""

    tracking_number: str
    values: dict[str, Any]


@dataclass(frozen=True)
class UpsertResult:
    shipment: Shipment
    created: bool
    changed: bool
    rechecked: tuple[str, ...]


@dataclass(frozen=True)
class ImportReport:
    rows: int
    created: int
    updated: int
    unchanged: int
    rechecked: tuple[str, ...]


def _error(field: str, message: str, row: int | None = None, tracking: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"field": field, "message": message}
    if row is not None:
        error = {"row": row, "tracking_number": tracking, **error}
    return error


def _time(name: str, raw: object, errors: list[dict[str, Any]]) -> datetime | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        errors.append(_error(name, "must be an ISO 8601 date-time text, e.g. 2026-12-01T09:30:00+08:00"))
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        errors.append(_error(name, f"is not an ISO 8601 date-time: {raw.strip()[:40]!r}"))
        return None
    if value.tzinfo is None:
        errors.append(_error(name, "needs a time zone (e.g. +08:00 or Z): a bare local time is ambiguous"))
        return None
    return value.astimezone(UTC)


def check_shipment(
    tracking_number: object, data: Mapping[str, object]
) -> tuple[ShipmentInput | None, list[dict[str, Any]]]:
    """A checked record, or None and every problem with it (field and message)."""
    errors: list[dict[str, Any]] = []
    unknown = sorted(str(k) for k in data if k not in COLUMNS)
    if unknown:
        errors.append(
            _error(unknown[0], f"unknown field(s): {', '.join(unknown)} (known: {', '.join(COLUMNS)})")
        )
    tracking = tracking_number.strip() if isinstance(tracking_number, str) else ""
    if not TRACKING_RE.fullmatch(tracking):
        errors.append(_error("tracking_number", "must be 4 to 40 characters: letters, digits or '-'"))
    for name in _REQUIRED:
        raw = data.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            errors.append(_error(name, "is required"))
    values: dict[str, Any] = {}
    currency = data.get("currency")
    code: str | None = None
    if isinstance(currency, str) and currency.strip():
        try:
            code = parse_currency(currency)
        except MoneyError as exc:
            errors.append(_error("currency", str(exc)))
    elif currency is not None and not isinstance(currency, str):
        errors.append(_error("currency", "must be an ISO 4217 code as text"))
    raw_value = data.get("declared_value")
    if isinstance(raw_value, int | float) and not isinstance(raw_value, bool):
        errors.append(_error("declared_value", 'must be decimal text such as "199.99", not a JSON number'))
    elif isinstance(raw_value, str) and raw_value.strip() and code is not None:
        try:
            values["declared_value"] = parse_amount(raw_value, code)
        except MoneyError as exc:
            errors.append(_error("declared_value", str(exc)))
    values["currency"] = code
    status = data.get("status")
    if isinstance(status, str) and status.strip():
        try:
            values["status"] = ShipmentStatus(status.strip().lower())
        except ValueError:
            known = ", ".join(s.value for s in ShipmentStatus)
            errors.append(_error("status", f"unknown status {status.strip()[:40]!r} (known: {known})"))
    values["shipped_at"] = _time("shipped_at", data.get("shipped_at"), errors)
    values["delivered_at"] = _time("delivered_at", data.get("delivered_at"), errors)
    missing_delivery = values.get("status") == ShipmentStatus.DELIVERED and values["delivered_at"] is None
    if missing_delivery and not any(e["field"] == "delivered_at" for e in errors):
        errors.append(_error("delivered_at", "is required when the status is delivered"))
    if values["shipped_at"] and values["delivered_at"] and values["delivered_at"] < values["shipped_at"]:
        errors.append(_error("delivered_at", "is before shipped_at"))
    for name, limit in _TEXT_LIMITS.items():
        raw = data.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            values[name] = None
        elif not isinstance(raw, str):
            errors.append(_error(name, "must be text"))
        elif len(raw.strip()) > limit:
            errors.append(_error(name, f"must be at most {limit} characters"))
        elif any(ord(ch) < 32 or ord(ch) == 0x7F for ch in raw):
            errors.append(_error(name, "must not contain control characters"))
        else:
            values[name] = raw.strip()
    if errors:
        return None, errors
    return ShipmentInput(tracking, values), []


def _recheck(session: Session, tracking_number: str, now: datetime) -> list[str]:
    """Move the claims that waited only for this shipment back to assessing (in the caller's
    transaction); their ids, to enqueue after the commit."""
    moved: list[str] = []
    for claim_id in claim_rows.ids_on_parcel_in_state(session, tracking_number, ClaimState.IN_REVIEW):
        claim = claim_rows.load_for_update(session, claim_id)
        if claim is None or claim.state != ClaimState.IN_REVIEW or claim.lease_holder_id is not None:
            continue
        reasons = (claim.decision or {}).get("reasons") or []
        if reasons != [ReasonCode.SHIPMENT_UNVERIFIED.value] or claim.decided_by_id is not None:
            continue
        apply_transition(
            session, claim, ClaimState.ASSESSING, Actor.SYSTEM, reasons=[ReasonCode.SHIPMENT_ARRIVED], now=now
        )
        moved.append(claim.id)
    return moved


def _enqueue(dispatcher: Dispatcher, claim_ids: Sequence[str]) -> None:
    for claim_id in claim_ids:
        try:
            dispatcher.enqueue_assessment(claim_id)
        except Exception:
            logger.exception(
                "could not enqueue claim %s after its shipment arrived; the sweeper will", claim_id
            )


def put_shipment(
    session: Session, dispatcher: Dispatcher, tracking_number: str, data: Mapping[str, object], actor: str
) -> UpsertResult:
    """Create or replace one shipment (idempotent); Unprocessable names every bad field."""
    checked, errors = check_shipment(tracking_number, data)
    if checked is None:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Unprocessable(f"invalid shipment: {summary}", code="validation_error", details=errors)
    for attempt in range(2):
        now = utcnow()
        shipment, created, changed = shipment_rows.upsert(
            session, checked.tracking_number, checked.values, actor=actor, now=now
        )
        rechecked = _recheck(session, checked.tracking_number, now) if changed else []
        try:
            session.commit()
        except IntegrityError:
            # A concurrent PUT created the record first: the second try updates it.
            session.rollback()
            if attempt:
                raise
            continue
        break
    _enqueue(dispatcher, rechecked)
    return UpsertResult(shipment, created, changed, tuple(rechecked))


# --------------------------------------------------------------------------------------------------
# Batches


def parse_batch(body: bytes, content_type: str) -> list[tuple[object, dict[str, object]]]:
    """(tracking number, fields) per row of a CSV (with a header row) or JSON-lines body. Raises
    Unprocessable for a body that cannot be read at all (bad encoding, not CSV / JSON lines)."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable(f"the batch is not UTF-8 text (byte {exc.start})", code="invalid_batch") from None
    if "\x00" in text:
        raise Unprocessable("the batch contains a NUL character", code="invalid_batch")
    kind = content_type.split(";")[0].strip().lower()
    rows: list[tuple[object, dict[str, object]]] = []
    if kind in ("text/csv", "application/csv"):
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        if "tracking_number" not in header:
            raise Unprocessable(
                f"the CSV header must name tracking_number (columns: {', '.join(COLUMNS)})",
                code="invalid_batch",
            )
        try:
            for record in reader:
                if None in record:
                    record = {k: v for k, v in record.items() if k is not None}
                    record["_extra"] = "values beyond the header"
                fields: dict[str, object] = {k: v for k, v in record.items() if k != "tracking_number"}
                rows.append((record.get("tracking_number"), fields))
        except csv.Error as exc:
            raise Unprocessable(f"the CSV cannot be read: {exc}", code="invalid_batch") from None
    elif kind in (
        "application/x-ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/json-lines",
    ):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise Unprocessable(
                    f"line {number} is not JSON: {exc.msg}", code="invalid_batch", details=[{"row": number}]
                ) from None
            if not isinstance(item, dict):
                raise Unprocessable(
                    f"line {number} must be a JSON object", code="invalid_batch", details=[{"row": number}]
                )
            tracking = item.pop("tracking_number", None)
            rows.append((tracking, item))
    else:
        raise Unprocessable(
            f"unsupported content type {kind!r}: send text/csv or application/x-ndjson (JSON lines)",
            code="unsupported_media_type",
        )
    return rows


def import_shipments(
    session: Session, dispatcher: Dispatcher, rows: Sequence[tuple[object, Mapping[str, object]]], actor: str
) -> ImportReport:
    """Check every row, then write them all in one transaction, or nothing (Unprocessable lists every
    bad row by its 1-based number, header not counted)."""
    if not rows:
        raise Unprocessable("the batch has no rows", code="invalid_batch")
    if len(rows) > MAX_BATCH_ROWS:
        raise Unprocessable(
            f"a batch holds at most {MAX_BATCH_ROWS} rows, got {len(rows)}: split it", code="batch_too_large"
        )
    checked: list[ShipmentInput] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for number, (tracking, data) in enumerate(rows, start=1):
        shown = tracking.strip()[:40] if isinstance(tracking, str) else None
        item, problems = check_shipment(tracking, {k: v for k, v in data.items() if k != "_extra"})
        if "_extra" in data:
            problems.append(_error("row", "has more values than the header has columns"))
            item = None
        errors.extend({"row": number, "tracking_number": shown, **p} for p in problems)
        if item is None:
            continue
        if item.tracking_number in seen:
            errors.append(
                _error(
                    "tracking_number",
                    f"appears twice in the batch (first in row {seen[item.tracking_number]})",
                    number,
                    shown,
                )
            )
            continue
        seen[item.tracking_number] = number
        checked.append(item)
    if errors:
        bad = sorted({e["row"] for e in errors})
        listed = ", ".join(str(r) for r in bad[:20]) + (" ..." if len(bad) > 20 else "")
        raise Unprocessable(
            f"nothing was imported: {len(bad)} of {len(rows)} rows are invalid (rows {listed})",
            code="invalid_batch",
            details=errors[:1000],
        )
    now = utcnow()
    created = updated = unchanged = 0
    rechecked: list[str] = []
    try:
        for item in checked:
            _, was_created, changed = shipment_rows.upsert(
                session, item.tracking_number, item.values, actor=actor, now=now
            )
            created += was_created
            updated += changed and not was_created
            unchanged += not changed
            if changed:
                rechecked.extend(_recheck(session, item.tracking_number, now))
        session.commit()
    except IntegrityError:
        # A concurrent import or PUT created one of these records first: nothing of this batch was
        # written; the caller may send it again (it is idempotent).
        session.rollback()
        raise Conflict(
            "another import wrote some of these shipments at the same time; nothing was imported: retry",
            code="concurrent_update",
        ) from None
    except BaseException:
        session.rollback()
        raise
    _enqueue(dispatcher, rechecked)
    return ImportReport(len(rows), created, updated, unchanged, tuple(rechecked))
