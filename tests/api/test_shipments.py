"""The carrier's integration: shipment records by PUT, by batch import (API and CLI), and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from storage.tables import Shipment
from tests.api.conftest import ApiHarness, assert_error

RECORD = {
    "declared_value": "300.00",
    "currency": "CNY",
    "status": "delivered",
    "shipped_at": "2026-12-01T09:30:00+08:00",
    "delivered_at": "2026-12-03T15:10:00+08:00",
    "sender_ref": "SHOP-88",
    "recipient_ref": "CUST-1201",
    "service": "standard",
}
CSV_HEADER = "tracking_number,declared_value,currency,status,shipped_at,delivered_at\n"


@pytest.fixture
def integration(api: ApiHarness) -> dict[str, str]:
    return api.user("integration")


def _count(api: ApiHarness) -> int:
    with api.services.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Shipment)) or 0)


def test_put_creates_then_repeats_as_a_no_op_then_updates(api: ApiHarness, integration) -> None:
    r = api.client.put("/v1/shipments/SF1000000001", json=RECORD, headers=integration)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["changed"]) == (True, True)
    assert body["declared_value"] == "300.00" and body["delivered_at"] == "2026-12-03T07:10:00Z"
    again = api.client.put("/v1/shipments/SF1000000001", json=RECORD, headers=integration).json()
    assert (again["created"], again["changed"]) == (False, False)
    moved = api.client.put(
        "/v1/shipments/SF1000000001", json={**RECORD, "declared_value": "250.00"}, headers=integration
    ).json()
    assert (moved["changed"], moved["declared_value"]) == (True, "250.00")
    assert _count(api) == 1
    got = api.client.get("/v1/shipments/SF1000000001", headers=integration)
    assert got.status_code == 200 and got.json()["declared_value"] == "250.00"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"declared_value": "-1"}, "declared_value", "negative"),
        ({"declared_value": "1.234"}, "declared_value", "decimal places"),
        ({"currency": "XYZ"}, "currency", "XYZ"),
        ({"status": "teleported"}, "status", "unknown status"),
        ({"delivered_at": None}, "delivered_at", "required when the status is delivered"),
        ({"delivered_at": "2026-12-03 15:10"}, "delivered_at", "time zone"),
        ({"delivered_at": "yesterday"}, "delivered_at", "ISO 8601"),
        ({"delivered_at": "2026-11-01T00:00:00Z"}, "delivered_at", "before shipped_at"),
        ({"service": "x" * 41}, "service", "at most 40"),
        ({"sender_ref": "a\x00b"}, "sender_ref", "NUL"),
        ({"sender_ref": "a\x07b"}, "sender_ref", "control characters"),
    ],
)
def test_bad_records_are_422_naming_the_field(api: ApiHarness, integration, change, field, words) -> None:
    body = {k: v for k, v in {**RECORD, **change}.items() if v is not None}
    error = assert_error(api.client.put("/v1/shipments/SF1000000002", json=body, headers=integration), 422)
    assert field in error["message"] and words in error["message"], error
    assert _count(api) == 0


def test_bad_tracking_numbers_unknown_fields_and_json_numbers_are_422(api: ApiHarness, integration) -> None:
    assert_error(api.client.put("/v1/shipments/ab", json=RECORD, headers=integration), 422)
    assert_error(
        api.client.put("/v1/shipments/SF10000003", json={**RECORD, "colour": "red"}, headers=integration), 422
    )
    error = assert_error(
        api.client.put(
            "/v1/shipments/SF10000003", json={**RECORD, "declared_value": 300.0}, headers=integration
        ),
        422,
    )
    assert "declared_value" in error["message"]
    bad_json = api.client.put(
        "/v1/shipments/SF10000003",
        content=b"{not json",
        headers={**integration, "Content-Type": "application/json"},
    )
    assert_error(bad_json, 422)
    assert _count(api) == 0


def test_only_integrations_and_admins_write_shipments(api: ApiHarness) -> None:
    assert_error(api.client.put("/v1/shipments/SF1000000004", json=RECORD), 401)
    for role in ("customer", "adjuster"):
        assert_error(api.client.put("/v1/shipments/SF1000000004", json=RECORD, headers=api.user(role)), 403)
    assert (
        api.client.put("/v1/shipments/SF1000000004", json=RECORD, headers=api.user("admin")).status_code
        == 200
    )
    assert_error(api.client.get("/v1/shipments/SF1000000004", headers=api.user("customer")), 403)
    assert_error(api.client.get("/v1/shipments/SF9999999999", headers=api.user("adjuster")), 404)


def _import(api: ApiHarness, headers, body: bytes | str, content_type: str = "text/csv"):
    data = body.encode() if isinstance(body, str) else body
    return api.client.post(
        "/v1/shipments:import", content=data, headers={**headers, "Content-Type": content_type}
    )


def test_a_csv_batch_imports_all_rows(api: ApiHarness, integration) -> None:
    rows = "".join(
        f"SF20000000{i:02d},{100 + i}.00,CNY,delivered,,2026-12-0{1 + i % 3}T10:00:00Z\n" for i in range(12)
    )
    r = _import(api, integration, CSV_HEADER + rows)
    assert r.status_code == 200, r.text
    assert r.json() == {"rows": 12, "created": 12, "updated": 0, "unchanged": 0, "rechecked_claims": []}
    again = _import(api, integration, CSV_HEADER + rows).json()
    assert (again["created"], again["unchanged"]) == (0, 12)
    assert _count(api) == 12


def test_a_batch_with_one_bad_row_writes_nothing_and_names_the_row(api: ApiHarness, integration) -> None:
    rows = [f"SF30000000{i:02d},100.00,CNY,delivered,,2026-12-01T10:00:00Z\n" for i in range(6)]
    rows[3] = "SF3000000003,12.345,CNY,delivered,,2026-12-01T10:00:00Z\n"  # the 4th row
    error = assert_error(_import(api, integration, CSV_HEADER + "".join(rows)), 422, "invalid_batch")
    assert "nothing was imported" in error["message"] and "rows 4" in error["message"]
    [detail] = error["details"]
    assert detail["row"] == 4 and detail["tracking_number"] == "SF3000000003"
    assert detail["field"] == "declared_value" and "decimal places" in detail["message"]
    assert _count(api) == 0


def test_json_lines_batches_and_their_errors(api: ApiHarness, integration) -> None:
    good = [{"tracking_number": f"SF40000000{i:02d}", **RECORD} for i in range(3)]
    body = "\n".join(json.dumps(x) for x in good) + "\n"
    r = _import(api, integration, body, "application/x-ndjson")
    assert r.status_code == 200 and r.json()["created"] == 3, r.text
    dup = body + json.dumps(good[0]) + "\n"
    error = assert_error(_import(api, integration, dup, "application/x-ndjson"), 422, "invalid_batch")
    assert error["details"][0]["row"] == 4 and "appears twice" in error["details"][0]["message"]
    broken = assert_error(_import(api, integration, body + "{oops\n", "application/x-ndjson"), 422)
    assert "line 4 is not JSON" in broken["message"]
    assert _count(api) == 3


@pytest.mark.parametrize(
    ("body", "content_type", "status", "words"),
    [
        (b"", "text/csv", 422, "header must name tracking_number"),
        (CSV_HEADER.encode(), "text/csv", 422, "no rows"),
        (b"tracking_number\n\xff\xfe\n", "text/csv", 422, "not UTF-8"),
        (b"tracking_number\nSF1\x00\n", "text/csv", 422, "NUL"),
        (b"<xml/>", "application/xml", 422, "unsupported content type"),
        (b"x" * (16 * 1024 * 1024 + 1), "text/csv", 413, "larger than"),
        (
            CSV_HEADER.encode() + b"SF5000000001,1.00,CNY,delivered,,2026-12-01T10:00:00Z,extra\n",
            "text/csv",
            422,
            "more values",
        ),
    ],
)
def test_unreadable_batches_are_4xx(api: ApiHarness, integration, body, content_type, status, words) -> None:
    error = assert_error(_import(api, integration, body, content_type), status)
    assert words in json.dumps(error), error
    assert _count(api) == 0


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"CLAIMLANE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_cli_imports_a_file_all_or_nothing(tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text(CSV_HEADER + "SF6000000001,80.00,CNY,delivered,,2026-12-01T10:00:00Z\n", encoding="utf-8")
    run = _cli(tmp_path, "shipments", "import", str(good))
    assert run.returncode == 0, run.stderr
    assert "imported 1 rows: 1 created" in run.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"tracking_number": "SF6000000002", **RECORD})
        + "\n"
        + json.dumps({"tracking_number": "SF6000000003", **RECORD, "currency": "??"})
        + "\n",
        encoding="utf-8",
    )
    run = _cli(tmp_path, "shipments", "import", str(bad))
    assert run.returncode == 1
    assert "nothing was imported" in run.stderr and '"row": 2' in run.stderr
