"""Shadow mode (`workers.shadow`): with a challenger in the registry, every assessment also records
what the challenger would have decided, and the challenger never changes the claim."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from models.registry import CHALLENGER
from services.context import Services
from storage.tables import ShadowPrediction, utcnow
from tests.workers.conftest import SEEDS, V1, V2, V3
from tests.workers.helpers import events, jpeg, load_claim, submit_claim
from workers.assessment import assess_claim
from workers.shadow import decisions_agree, render_shadow_report, shadow_report

# With the tiny models, V1 and V2 grade jpeg(1) differently (2 vs 0) and jpeg(5) the same (0).
DISAGREE_PHOTO, AGREE_PHOTO = 1, 5


def shadow_rows(services: Services) -> list[ShadowPrediction]:
    with services.sessions() as session:
        return list(session.scalars(select(ShadowPrediction).order_by(ShadowPrediction.id)))


def with_challenger(registry_services, tiny_model_factory, version: str = V2, **settings) -> Services:
    services = registry_services(**settings)
    assert services.model().version == V1  # bootstraps the champion
    services.registry.register(tiny_model_factory(version, seed=SEEDS[version]), actor="test")
    services.registry.set_alias(CHALLENGER, version, actor="test", reason="shadow test")
    return services


def alone(registry_services, tiny_model_factory, version: str) -> Services:
    """Services on a database of their own serving `version` from its file, no registry, no shadow
    (their own, so the same photo filed there is not another claim's photo here)."""
    model = tiny_model_factory(version, seed=SEEDS[version])
    return registry_services(model_path=model, data_dir=model.parent / f"alone-{uuid.uuid4().hex[:8]}")


def core(decision: dict[str, Any] | None) -> dict[str, Any]:
    """A decision without its integrity evidence (shipment times differ between databases)."""
    return {k: v for k, v in (decision or {}).items() if k != "integrity"}


def test_assessments_record_the_challengers_decision_and_keep_the_champions(
    registry_services, tiny_model_factory
) -> None:
    services = with_challenger(registry_services, tiny_model_factory)
    champion_only = alone(registry_services, tiny_model_factory, V1)
    challenger_only = alone(registry_services, tiny_model_factory, V2)

    for seed in (DISAGREE_PHOTO, AGREE_PHOTO):
        photos = [jpeg(seed)]
        claim_id = submit_claim(services, photos)
        assert assess_claim(services, claim_id) == "assessed"
        claim = load_claim(services, claim_id)

        # The claim is exactly what the champion alone decides.
        reference_id = submit_claim(champion_only, photos)
        assert assess_claim(champion_only, reference_id) == "assessed"
        reference = load_claim(champion_only, reference_id)
        assert core(claim.decision) == core(reference.decision)
        assert claim.claim_probs == reference.claim_probs
        assert (claim.state, claim.model_version) == (reference.state, V1)
        trail = events(services, claim_id)
        assert [e.model_version for e in trail] == [None, None, V1]
        assert set(trail[-1].detail) <= {
            "claim_probs",
            "per_photo",
            "confidence",
        }  # nothing of the challenger
        assert {"claim_probs", "per_photo"} <= set(trail[-1].detail)

        # The shadow row: the champion's decision beside the one the challenger alone would make.
        challenger_id = submit_claim(challenger_only, photos)
        assert assess_claim(challenger_only, challenger_id) == "assessed"
        challenger = load_claim(challenger_only, challenger_id)
        [row] = [r for r in shadow_rows(services) if r.claim_id == claim_id]
        assert (row.champion_version, row.challenger_version) == (V1, V2)
        assert row.champion_probs == claim.claim_probs
        assert row.champion_decision == core(claim.decision)
        assert row.challenger_probs == challenger.claim_probs
        assert row.challenger_decision == core(challenger.decision)
        assert row.agree is decisions_agree(claim.decision, challenger.decision)
        assert row.agree is (seed == AGREE_PHOTO)

    # Only the registry-mode Services shadows: the file-mode ones recorded nothing.
    assert len(shadow_rows(services)) == 2
    report = shadow_report(services.sessions())
    assert (report["total"], report["agree"], report["agreement_rate"]) == (2, 1, 0.5)
    [changed] = report["changed"]
    assert changed["champion"]["grade"] == 2 and changed["challenger"]["grade"] == 0


def test_no_shadow_row_without_a_distinct_challenger_or_with_shadow_mode_off(
    registry_services, tiny_model_factory
) -> None:
    plain = registry_services()
    claim_id = submit_claim(plain, [jpeg(1)])
    assert assess_claim(plain, claim_id) == "assessed"  # no challenger at all
    plain.registry.set_alias(CHALLENGER, V1, actor="test", reason="the champion itself")
    plain.check_models_now()
    assert plain.challenger_model() is plain.model()  # one version, loaded once
    claim_id = submit_claim(plain, [jpeg(2)])
    assert assess_claim(plain, claim_id) == "assessed"
    assert shadow_rows(plain) == []

    off = with_challenger(registry_services, tiny_model_factory, shadow_mode=False)
    claim_id = submit_claim(off, [jpeg(1)])
    assert assess_claim(off, claim_id) == "assessed"
    assert shadow_rows(off) == []


class _Exploding:
    version = "exploding-1"

    def predict_arrays(self, batch):
        raise RuntimeError("the challenger blew up")


@pytest.mark.parametrize("failure", ["predict", "lookup", "record", "unloadable"])
def test_a_failing_challenger_is_logged_and_ignored(
    registry_services,
    tiny_model_factory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    failure: str,
) -> None:
    services = with_challenger(registry_services, tiny_model_factory)
    if failure == "predict":
        monkeypatch.setattr(services, "challenger_model", lambda: _Exploding())
    elif failure == "lookup":

        def lookup() -> Any:
            raise OSError("registry unreachable")

        monkeypatch.setattr(services, "challenger_model", lookup)
    elif failure == "record":

        def row(**_: Any) -> Any:
            raise ValueError("cannot build the row")

        monkeypatch.setattr("workers.shadow.ShadowPrediction", row)
    else:  # a challenger whose files are damaged in the store: it never loads
        services.registry.register(tiny_model_factory(V3, seed=SEEDS[V3]), actor="test")
        services.store.put(f"registry/versions/{V3}/model.onnx", b"garbage", "application/octet-stream")
        services.registry.set_alias(CHALLENGER, V3, actor="test", reason="broken challenger")
    champion_only = alone(registry_services, tiny_model_factory, V1)

    caplog.set_level(logging.INFO)
    claim_id = submit_claim(services, [jpeg(DISAGREE_PHOTO)])
    assert assess_claim(services, claim_id) == "assessed"
    reference_id = submit_claim(champion_only, [jpeg(DISAGREE_PHOTO)])
    assert assess_claim(champion_only, reference_id) == "assessed"
    claim, reference = load_claim(services, claim_id), load_claim(champion_only, reference_id)
    assert core(claim.decision) == core(reference.decision) and claim.state == reference.state
    assert claim.model_version == V1
    assert shadow_rows(services) == []
    expected = {
        "predict": "shadow grading with the challenger failed",
        "lookup": "shadow grading with the challenger failed",
        "record": "cannot record the shadow prediction",
        "unloadable": f"cannot load challenger model {V3}",
    }[failure]
    assert expected in caplog.text


# --------------------------------------------------------------------------------------------------
# The report


def _decision(kind: str, grade: int, amount: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"kind": kind, "grade": grade, "confidence": "0.9"}
    if kind == "offer":
        record.update(amount=amount, currency="CNY")
    else:
        record["reasons"] = ["low_confidence"]
    return record


def test_shadow_report_on_a_seeded_set(registry_services) -> None:
    services = registry_services(model_source="file")
    a, b, c, d, e = (submit_claim(services, [jpeg(i)]) for i in range(5))
    now = utcnow()
    seeded = [
        # claim, days ago, champion decision, challenger decision, challenger version
        (a, 0, _decision("offer", 0, "10.00"), _decision("offer", 0, "10.00"), "chal-1"),
        (b, 0, _decision("offer", 1, "20.00"), _decision("review", 2), "chal-1"),
        (c, 0, _decision("review", 3), _decision("review", 3), "chal-1"),
        (d, 0, _decision("offer", 2, "50.00"), _decision("offer", 1, "20.00"), "chal-1"),
        (a, 10, _decision("offer", 0, "10.00"), _decision("offer", 0, "10.00"), "chal-1"),  # old
        (e, 0, _decision("offer", 1, "20.00"), _decision("offer", 3, "100.00"), "chal-0"),  # another
    ]
    with services.sessions() as session:
        for claim_id, days, champion, challenger, version in seeded:
            session.add(
                ShadowPrediction(
                    claim_id=claim_id,
                    at=now - timedelta(days=days, minutes=len(seeded)),
                    champion_version="champ-1",
                    challenger_version=version,
                    champion_probs=[0.25, 0.25, 0.25, 0.25],
                    challenger_probs=[0.25, 0.25, 0.25, 0.25],
                    champion_decision=champion,
                    challenger_decision=challenger,
                    agree=decisions_agree(champion, challenger),
                )
            )
        session.commit()
        assert session.scalar(select(func.count()).select_from(ShadowPrediction)) == 6

        report = shadow_report(session, since=now - timedelta(days=1), challenger_version="chal-1")
        everything = shadow_report(session)

    assert report["total"] == 4
    assert (report["agree"], report["disagree"], report["agreement_rate"]) == (2, 2, 0.5)
    assert report["pairs"] == [{"champion_version": "champ-1", "challenger_version": "chal-1", "count": 4}]
    assert report["grade_matrix"] == [
        [1, 0, 0, 0],  # champion grade 0: the challenger agreed
        [0, 0, 1, 0],  # 1 -> 2
        [0, 1, 0, 0],  # 2 -> 1
        [0, 0, 0, 1],  # 3 -> 3
    ]
    assert [(g["grade"], g["count"], g["agreement_rate"]) for g in report["per_grade_agreement"]] == [
        (0, 1, 1.0),
        (1, 1, 0.0),
        (2, 1, 0.0),
        (3, 1, 1.0),
    ]
    assert report["kinds"] == {"champion": {"offer": 3, "review": 1}, "challenger": {"offer": 2, "review": 2}}
    assert report["fast_lane_rate"] == {"champion": 0.75, "challenger": 0.5}
    assert [
        (x["claim_id"], x["champion"]["amount"], x["challenger"]["amount"]) for x in report["changed"]
    ] == [
        (b, "20.00", None),
        (d, "50.00", "20.00"),
    ]
    assert report["changed"][0]["challenger"]["kind"] == "review"
    assert report["changed"][0]["challenger"]["reasons"] == ["low_confidence"]

    assert everything["total"] == 6 and everything["agree"] == 3 and everything["agreement_rate"] == 0.5
    assert {p["challenger_version"]: p["count"] for p in everything["pairs"]} == {"chal-0": 1, "chal-1": 5}
    assert [x["claim_id"] for x in everything["changed"]] == [b, d, e]

    text = render_shadow_report(report)
    assert "challenger chal-1" in text
    assert "champion champ-1 vs challenger chal-1: 4 assessments" in text
    assert "Agreement (same decision kind and grade): 2/4 (50.0%)" in text
    assert "Fast-lane rate: champion 75.0%, challenger 50.0%" in text
    assert "Decisions the challenger would have made differently: 2" in text
    assert b in text and d in text and "50.00 CNY" in text
    matrix_line = next(line for line in text.splitlines() if line.startswith("cosmetic"))
    assert matrix_line.split() == ["cosmetic", "0", "0", "1", "0", "1", "0.0%"]


def test_shadow_report_when_nothing_was_recorded(registry_services) -> None:
    services = registry_services(model_source="file")
    with services.sessions() as session:
        report = shadow_report(session)
    assert report["total"] == 0 and report["agreement_rate"] is None and report["changed"] == []
    assert report["fast_lane_rate"] == {"champion": None, "challenger": None}
    assert "no shadow predictions recorded" in render_shadow_report(report)
