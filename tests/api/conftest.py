"""The API in embedded mode on a temporary folder: SQLite, a local object store, the in-process
dispatcher and the tiny ONNX model. Every test gets a fresh app; `ApiHarness` wraps the client with
helpers for users, claims and the "nothing left behind" counts."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from api.main import create_app
from api.security import create_user
from claims.money import MoneyError, parse_amount, parse_currency
from claims.policy import PolicyConfig
from config.settings import Settings
from services.context import Services, build_services
from storage.tables import Claim, IdempotencyKey, Photo
from tests.factories import (  # noqa: F401 (re-exported)
    OFFER_ALL,
    add_shipment,
    gif_bytes,
    jpeg_bytes,
    png_bytes,
)


def jpeg_with_gps(seed: int = 5) -> bytes:
    """A JPEG whose EXIF carries GPS coordinates (as phones write them)."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = {1: "N", 2: (39.0, 54.0, 27.0), 3: "E", 4: (116.0, 23.0, 50.0)}
    exif[0x8825] = gps  # GPSInfo IFD
    return jpeg_bytes(seed, exif=exif.tobytes())


Upload = tuple[str, bytes, str]  # (filename, bytes, content type)


def photo(data: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg") -> Upload:
    return (name, data, content_type)


# A well-formed claim or photo id that names nothing (ids in URLs must be UUIDs, else 422).
NO_SUCH_ID = "00000000-0000-4000-8000-000000000000"


@dataclass
class ApiHarness:
    client: TestClient
    app: FastAPI
    services: Services
    settings: Settings
    _users: int = field(default=0)
    _claims: int = field(default=0)

    # -- users ----------------------------------------------------------------------------------

    def user(self, role: str = "customer", name: str | None = None) -> dict[str, str]:
        """Create a user; return its auth headers (with `X-Test-User-Id` for assertions only)."""
        self._users += 1
        with self.services.sessions() as session:
            user, key = create_user(session, name or f"{role}-{self._users}-{uuid.uuid4().hex[:6]}", role)
            session.commit()
            return {"Authorization": f"Bearer {key}", "X-Test-User-Id": str(user.id)}

    # -- shipments and claims -------------------------------------------------------------------

    def shipment(self, tracking_number: str, **fields: Any) -> None:
        """A shipment record as the carrier's feed would push it (delivered yesterday by default)."""
        add_shipment(self.services, tracking_number, **fields)

    def post_claim(
        self,
        headers: dict[str, str],
        photos: list[Upload] | None = None,
        *,
        key: str | None = "auto",
        shipment: bool = True,
        **fields: Any,
    ):
        """File a claim. By default each call gets its own tracking number (with a delivered shipment
        at the declared value, unless `shipment=False` or one exists) and its own photo, so two claims
        of one test do not trip the one-claim-per-parcel and reused-photo checks by accident."""
        self._claims += 1
        # Requests under explicit keys (the idempotency tests) share one set of defaults, so a retry, or
        # the same request under another key, is the same request; automatic keys get fresh ones.
        token = hashlib.sha256(b"explicit key").hexdigest() if key != "auto" else uuid.uuid4().hex
        data = {"tracking_number": f"SF{token[:10].upper()}", "declared_value": "100.00", "currency": "CNY"}
        data.update({k: v for k, v in fields.items() if v is not None})
        for k in [k for k, v in fields.items() if v is None]:
            data.pop(k, None)
        if shipment and "tracking_number" in data:
            try:
                code = parse_currency(str(data.get("currency") or "CNY"))
                value = parse_amount(str(data.get("declared_value") or "100.00"), code)
            except MoneyError:
                code, value = "CNY", Decimal("100.00")  # the request is invalid anyway
            add_shipment(
                self.services,
                str(data["tracking_number"]),
                declared_value=str(value),
                currency=code,
                only_if_missing=True,
            )
        # Deterministic photos (grades depend on them): the same seed for a retry, a new one per claim.
        seed = 1 if key != "auto" else 1000 + self._claims
        default = [photo(jpeg_bytes(seed))]
        files = [("photos", p) for p in (photos if photos is not None else default)]
        hdrs = dict(headers)
        if key == "auto":
            key = uuid.uuid4().hex
        if key is not None:
            hdrs["Idempotency-Key"] = key
        return self.client.post("/v1/claims", data=data, files=files or None, headers=hdrs)

    def drain(self, timeout: float = 30.0) -> None:
        dispatcher = self.app.state.dispatcher
        assert dispatcher.drain(timeout), "assessments did not finish in time"

    def accept(self, claim_id: str, headers: dict[str, str], option: str = "cash"):
        """The customer accepts the offer as `option`; the response."""
        return self.client.post(f"/v1/claims/{claim_id}/accept", json={"option": option}, headers=headers)

    def offered_claim(self, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
        """A claim filed through the API and assessed: returns its view (state offered)."""
        r = self.post_claim(headers, **fields)
        assert r.status_code == 202, r.text
        self.drain()
        view = self.client.get(r.json()["url"], headers=headers).json()
        assert view["status"] == "offered", view
        return view

    # -- what is stored -------------------------------------------------------------------------

    def objects(self) -> list[Path]:
        root = self.settings.resolved_local_store_dir()
        if not root.exists():
            return []
        return [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]

    def counts(self) -> dict[str, int]:
        with self.services.sessions() as session:
            return {
                "claims": session.scalar(select(func.count()).select_from(Claim)),
                "photos": session.scalar(select(func.count()).select_from(Photo)),
                "idempotency_keys": session.scalar(select(func.count()).select_from(IdempotencyKey)),
                "objects": len(self.objects()),
            }

    def assert_nothing_stored(self) -> None:
        assert self.counts() == {"claims": 0, "photos": 0, "idempotency_keys": 0, "objects": 0}


def approve_case(
    client: TestClient, headers: dict[str, str], claim_id: str, grade: int = 2, **kwargs: Any
) -> None:
    """An adjuster (`headers`) takes the case and approves it, grading every photo `grade`, over the
    JSON review API (`kwargs` go to the client's post, such as the console client's csrf=False)."""
    assert client.post(f"/v1/review/{claim_id}/take", headers=headers, **kwargs).status_code == 200
    case = client.get(f"/v1/review/{claim_id}", headers=headers).json()
    body = {"action": "approve", "grades": {p["id"]: grade for p in case["photos"]}}
    r = client.post(f"/v1/review/{claim_id}/decision", json=body, headers=headers, **kwargs)
    assert r.status_code == 200, r.text


def assert_error(response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


MakeApi = Callable[..., ApiHarness]


@pytest.fixture
def make_api(tmp_path: Path, tiny_onnx_model: Path) -> Iterator[MakeApi]:
    """Build an app: `make_api(policy=..., store=..., raise_server_exceptions=..., **settings)`."""
    stack = ExitStack()
    built = 0

    def make(
        *,
        policy: PolicyConfig | None = OFFER_ALL,
        store_wrapper=None,
        raise_server_exceptions: bool = True,
        **overrides: Any,
    ) -> ApiHarness:
        nonlocal built
        built += 1
        values: dict[str, Any] = {"data_dir": tmp_path / f"data{built}", "model_path": tiny_onnx_model}
        values.update(overrides)
        settings = Settings(**values)
        services = build_services(settings)
        stack.callback(services.close)
        if policy is not None:
            services.policy = policy
        if store_wrapper is not None:
            services.store = store_wrapper(services.store)
        app = create_app(services=services)
        client = stack.enter_context(TestClient(app, raise_server_exceptions=raise_server_exceptions))
        return ApiHarness(client=client, app=app, services=services, settings=settings)

    yield make
    stack.close()


@pytest.fixture
def api(make_api: MakeApi) -> ApiHarness:
    return make_api()


@pytest.fixture
def customer(api: ApiHarness) -> dict[str, str]:
    return api.user("customer")


@pytest.fixture
def fresh_postgres(postgres_url: str) -> Iterator[str]:
    """A database of this test's own on the test PostgreSQL server."""
    import uuid

    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"claimlane_fraud_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
