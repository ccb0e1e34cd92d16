"""A real `claimlane serve --workers 2`, as `make run` starts it (with the tests' tiny model and a
policy that offers): /metrics adds up both server processes whichever one answers the scrape, and
the logs are JSON lines, one per request with its request id, which the assessment's own lines
carry too."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.security import create_user
from config.settings import Settings
from services.context import build_services
from tests.api.test_memory_budget import ROOT, _serve
from tests.factories import OFFER_ALL, add_shipment, jpeg_bytes, policy_toml

CLAIMS = 6


def _scrape(base_url: str, admin_key: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {admin_key}"}, timeout=10)
    assert r.status_code == 200, r.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


@pytest.mark.slow
def test_two_server_processes_share_metrics_and_log_json_with_request_ids(
    tmp_path: Path, tiny_onnx_model: Path
) -> None:
    data = tmp_path / "data"
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(policy_toml(OFFER_ALL))
    settings = Settings(data_dir=data, model_path=tiny_onnx_model, policy_file=policy_file)
    services = build_services(settings)
    tracking = [f"SF{uuid.uuid4().hex[:10].upper()}" for _ in range(CLAIMS)]
    with services.sessions() as session:
        _, admin = create_user(session, "ops-admin", "admin")
        _, customer = create_user(session, "ops-customer", "customer")
        session.commit()
    for number in tracking:
        add_shipment(services, number)
    services.close()

    log_file = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAIMLANE_", "PROMETHEUS_"))}
    env.update(
        CLAIMLANE_DATA_DIR=str(data),
        CLAIMLANE_MODEL_PATH=str(tiny_onnx_model),
        CLAIMLANE_POLICY_FILE=str(policy_file),
        CLAIMLANE_RATE_LIMITS="false",
        CLAIMLANE_WEB_WORKERS="2",
        CLAIMLANE_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    request_ids = [f"req-{uuid.uuid4().hex[:12]}" for _ in range(CLAIMS)]
    with log_file.open("wb") as log, _serve(env, stderr=log, log_level="info") as (base_url, _proc):
        for i, (number, rid) in enumerate(zip(tracking, request_ids, strict=True)):
            r = httpx.post(  # a new connection each time: the two processes share the claims
                f"{base_url}/v1/claims",
                data={"tracking_number": number, "declared_value": "100.00", "currency": "CNY"},
                files=[("photos", ("p.jpg", jpeg_bytes(7000 + i), "image/jpeg"))],
                headers={"Authorization": f"Bearer {customer}", "Idempotency-Key": rid, "X-Request-ID": rid},
                timeout=30,
            )
            assert r.status_code == 202, r.text
            decided = httpx.get(
                f"{base_url}{r.json()['url']}",
                params={"wait": 20},
                headers={"Authorization": f"Bearer {customer}"},
                timeout=30,
            ).json()
            assert decided["status"] == "offered", decided
        for _ in range(30):  # many scrapes: each process answers some; every one sees all claims
            samples = _scrape(base_url, admin)
            assert samples[("claimlane_claims_filed_total", ())] == CLAIMS
            assert (
                samples[
                    (
                        "claimlane_http_requests_total",
                        (("method", "POST"), ("route", "/v1/claims"), ("status", "202")),
                    )
                ]
                == CLAIMS
            )
            assert samples[("claimlane_offers_made_total", (("currency", "CNY"),))] == CLAIMS
        time.sleep(0.5)
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    assert lines, log_file.read_text()[-2000:]
    pids = {line["process"] for line in lines if line.get("logger") == "claimlane.access"}
    assert len(pids) == 2, "both server processes answered requests"
    for rid in request_ids:
        mine = [line for line in lines if line.get("request_id") == rid]
        access = [line for line in mine if line["logger"] == "claimlane.access"]
        assert len(access) == 1 and access[0]["route"] == "/v1/claims" and access[0]["status"] == 202, mine
        assert any("assessment of claim" in line["message"] for line in mine), mine
