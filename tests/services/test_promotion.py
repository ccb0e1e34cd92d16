"""The promotion gate (scoring, gating) and the promotion service (promote, override, rollback,
register, events), through Python and through the CLI."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import select, text

from config.settings import Settings
from models.inference import DamageModel
from models.promotion import STATUS_FEW, STATUS_NA, GateConfig, GateMetrics, Sample, gate, score
from models.registry import CHALLENGER, CHAMPION, NoRollbackTarget, VersionNotFound
from services import promotion
from services.context import Services, build_services
from storage.tables import Claim, ModelEvent, Photo, PhotoLabel, ReviewDecision, User
from tests.models.gate_models import GateModels, photo_png, samples, write_evalset

THRESHOLD = Decimal("0.9")
LANES = frozenset({2, 3})


# --------------------------------------------------------------------------------------------------
# Scoring


def test_score_good_and_inverted_models(gate_models: GateModels) -> None:
    data = samples(4, binary_only=2)
    good = score(DamageModel(gate_models.good), data, THRESHOLD, LANES)
    assert good.n == 20 and good.failed == 0
    assert good.auroc == 1.0
    assert good.ece < 0.02
    assert good.fast_lane_count == 4 + 4 + 2  # grades 2 and 3, plus the binary damaged ones
    assert good.fast_lane_error_rate == 0.0

    bad = score(DamageModel(gate_models.bad), data, THRESHOLD, LANES)
    assert bad.auroc < 0.2  # intact parcels ranked above damaged ones
    assert bad.ece > 0.5
    # It fast-lanes the intact and cosmetic photos (as severe/structural): every one is wrong.
    assert bad.fast_lane_count == 4 + 4 + 2
    assert bad.fast_lane_error_rate == 1.0


def test_score_threshold_and_lanes_follow_the_policy(gate_models: GateModels) -> None:
    data = samples(2)
    model = DamageModel(gate_models.good)
    assert score(model, data, Decimal("1"), LANES).fast_lane_count == 0
    assert score(model, data, Decimal("1"), LANES).fast_lane_error_rate == 0.0
    assert score(model, data, THRESHOLD, frozenset({3})).fast_lane_count == 2


def test_score_skips_undecodable_photos(gate_models: GateModels) -> None:
    data = [*samples(1), Sample(b"not an image", 2, 1)]
    metrics = score(DamageModel(gate_models.good), data, THRESHOLD, LANES)
    assert metrics.n == 4 and metrics.failed == 1
    empty = score(DamageModel(gate_models.good), [], THRESHOLD, LANES)
    assert empty.n == 0 and math.isnan(empty.auroc)


def test_binary_only_fast_lane_errors_are_intact_parcels(gate_models: GateModels) -> None:
    # Intact, labelled only damaged/intact, graded severe by the inverted model: a wrong payout.
    data = [Sample(photo_png(0, v), None, 0) for v in range(3)] + [
        Sample(photo_png(3, v), None, 1) for v in range(3)
    ]
    metrics = score(DamageModel(gate_models.bad), data, THRESHOLD, LANES)
    assert metrics.fast_lane_count == 3 and metrics.fast_lane_error_rate == 1.0


# --------------------------------------------------------------------------------------------------
# Gating


def _m(n=100, auroc=0.9, ece=0.05, fl=0.02, count=50) -> GateMetrics:
    return GateMetrics(n=n, auroc=auroc, ece=ece, fast_lane_error_rate=fl, fast_lane_count=count)


def test_gate_passes_within_tolerance_and_fails_beyond() -> None:
    champion = _m()
    assert gate(champion, _m(auroc=0.891, ece=0.069, fl=0.029)).passed
    result = gate(champion, _m(auroc=0.85, ece=0.08, fl=0.05))
    assert not result.passed
    assert len(result.failures) == 3
    assert any("AUROC 0.8500 is lower than the champion's 0.9000" in f for f in result.failures)
    assert any("ECE" in f and "higher" in f for f in result.failures)
    assert any("fast-lane error rate" in f for f in result.failures)
    assert [r.status for r in result.rows] == ["fail", "fail", "fail", "ok"]
    # Better is always fine.
    assert gate(champion, _m(auroc=0.99, ece=0.01, fl=0.0)).passed


def test_gate_refuses_a_challenger_that_pays_more_wrongly() -> None:
    """Money decides too: same ranking and calibration, but more overpaid on the same photos."""
    champion = dataclasses.replace(_m(), overpayment=0.01)
    result = gate(champion, dataclasses.replace(_m(), overpayment=0.03))
    assert not result.passed
    assert result.failures == [
        "eval: overpayment 0.0300 is higher than the champion's 0.0100 by 0.0200 (tolerance 0.005, n=100)"
    ]
    assert gate(champion, dataclasses.replace(_m(), overpayment=0.012)).passed


def test_gate_sets_are_separate_and_small_sets_do_not_block() -> None:
    result = gate(
        {"fixed": _m(), "reviewed": _m(n=5)},
        {"fixed": _m(auroc=0.895), "reviewed": _m(n=5, auroc=0.1)},
        GateConfig(min_samples=10),
    )
    assert result.passed
    assert any("reviewed: not enough samples (5 < 10)" in note for note in result.notes)
    assert {r.status for r in result.rows if r.set == "reviewed"} == {STATUS_FEW}
    assert {r.status for r in result.rows if r.set == "fixed"} == {"ok"}

    refused = gate({"fixed": _m(), "reviewed": _m()}, {"fixed": _m(), "reviewed": _m(auroc=0.5)})
    assert refused.failures == [
        "reviewed: AUROC 0.5000 is lower than the champion's 0.9000 by 0.4000 (tolerance 0.01, n=100)"
    ]


def test_gate_undefined_metrics_do_not_block() -> None:
    result = gate(_m(auroc=float("nan")), _m(auroc=float("nan")))
    assert result.passed
    assert [r.status for r in result.rows][0] == STATUS_NA
    assert "AUROC undefined" in result.notes[0]
    table = result.table()
    assert "AUROC" in table and "n/a" in table


# --------------------------------------------------------------------------------------------------
# The promotion service


@pytest.fixture
def services(tmp_path: Path, gate_models: GateModels) -> Iterator[Services]:
    settings = Settings(data_dir=tmp_path / "data", model_path=gate_models.good / "model.onnx")
    svc = build_services(settings)
    try:
        yield svc
    finally:
        svc.close()


def _events(services: Services) -> list[tuple[str, str, str | None]]:
    with services.sessions() as session:
        return [
            (e.action, e.version, e.previous_version)
            for e in session.scalars(select(ModelEvent).order_by(ModelEvent.id))
        ]


def _install_evalset(services: Services, tmp_path: Path) -> None:
    promotion.registry_for(services).put_evalset(write_evalset(tmp_path / "evalset", per_grade=4))


def test_promote_refuses_a_worse_model_then_override_then_rollback(
    services: Services, gate_models: GateModels, tmp_path: Path
) -> None:
    _install_evalset(services, tmp_path)
    registry = promotion.registry_for(services)
    assert promotion.ensure_champion(services) == "good-1"
    info = promotion.register(services, gate_models.bad, actor="cli:alice")
    assert info.version == "bad-3"
    assert registry.aliases() == {CHAMPION: "good-1", CHALLENGER: "bad-3"}

    with pytest.raises(promotion.PromotionRefused) as refused:
        promotion.promote(services, "bad-3", actor="admin:1")
    result = refused.value.result
    assert not result.gate.passed and not result.promoted
    assert any(f.startswith("fixed: AUROC") for f in result.gate.failures)
    assert any(f.startswith("fixed: fast-lane error rate") for f in result.gate.failures)
    # No reviewed labels yet: that set is reported, not gated.
    assert any("reviewed: not enough samples (0 < 10)" in n for n in result.gate.notes)
    assert registry.alias(CHAMPION) == "good-1"
    assert [e[0] for e in _events(services)] == ["register", "set_challenger"]

    # A blank reason is no reason.
    with pytest.raises(promotion.PromotionRefused):
        promotion.promote(services, "bad-3", actor="admin:1", override_reason="   ")

    overridden = promotion.promote(services, "bad-3", actor="admin:1", override_reason="hotfix for the demo")
    assert overridden.promoted and overridden.action == "override"
    assert registry.alias(CHAMPION) == "bad-3"
    assert registry.alias(CHALLENGER) is None  # it serves now: nothing left to shadow
    with services.sessions() as session:
        event = session.scalars(select(ModelEvent).where(ModelEvent.action == "override")).one()
        assert event.actor == "admin:1" and event.reason == "hotfix for the demo"
        assert event.previous_version == "good-1" and event.version == "bad-3"
        assert event.gate["passed"] is False and event.gate["failures"]
        assert event.gate["evalset_sha256"] == registry.evalset_info()["sha256"]
        assert event.gate["metrics"]["fixed"]["challenger"]["auroc"] < 0.2

    assert promotion.rollback(services, actor="admin:1", reason="bad grades") == "good-1"
    assert registry.alias(CHAMPION) == "good-1"
    assert _events(services)[-1] == ("rollback", "good-1", "bad-3")
    with pytest.raises(NoRollbackTarget):
        promotion.rollback(services, actor="admin:1", reason="again")


def test_promote_a_model_that_is_not_worse(
    services: Services, gate_models: GateModels, tmp_path: Path
) -> None:
    _install_evalset(services, tmp_path)
    promotion.ensure_champion(services)
    promotion.register(services, gate_models.ok, actor="cli:bob", parent="good-1")
    result = promotion.promote(services, "ok-2", actor="cli:bob")
    assert result.promoted and result.action == "promote" and result.gate.passed
    assert result.previous_version == "good-1"
    assert {r.set for r in result.gate.rows} == {"fixed", "reviewed"}
    assert promotion.registry_for(services).alias(CHAMPION) == "ok-2"
    assert _events(services)[-1] == ("promote", "ok-2", "good-1")
    with pytest.raises(promotion.PromotionError, match="already the champion"):
        promotion.promote(services, "ok-2", actor="cli:bob")
    with pytest.raises(VersionNotFound):
        promotion.promote(services, "nope-9", actor="cli:bob")

    view = promotion.overview(services)
    assert view["aliases"] == {CHAMPION: "ok-2", CHALLENGER: None}
    by_version = {v["version"]: v for v in view["versions"]}
    assert by_version["ok-2"]["aliases"] == [CHAMPION]
    assert by_version["ok-2"]["parent"] == "good-1"
    assert by_version["ok-2"]["last_gate"]["passed"] is True
    assert by_version["good-1"]["metrics"]["auroc"] == 0.97


def test_set_challenger_and_register_without_it(services: Services, gate_models: GateModels) -> None:
    promotion.ensure_champion(services)
    promotion.register(services, gate_models.ok, actor="a", as_challenger=False)
    registry = promotion.registry_for(services)
    assert registry.alias(CHALLENGER) is None
    assert promotion.set_challenger(services, "ok-2", actor="a") is None
    assert registry.alias(CHALLENGER) == "ok-2"
    with pytest.raises(promotion.PromotionError):
        promotion.set_challenger(services, "good-1", actor="a")
    assert [e[0] for e in _events(services)] == ["register", "set_challenger"]


def _review_labels(services: Services, labels: list[tuple[bytes, int]]) -> None:
    """Adjusters' labels on photos of one claim (what services.reviewing records)."""
    with services.sessions() as session:
        user = User(name="adj", role="adjuster", key_prefix="p", key_hash="0" * 64)
        session.add(user)
        session.flush()
        claim = Claim(
            customer_id=user.id,
            tracking_number="T",
            declared_value=Decimal("100"),
            currency="CNY",
            state="approved",
        )
        session.add(claim)
        session.flush()
        decision = ReviewDecision(claim_id=claim.id, adjuster_id=user.id, action="approve", currency="CNY")
        session.add(decision)
        session.flush()
        for i, (data, grade) in enumerate(labels):
            key = f"photos/original/test-{i}"
            services.store.put(key, data, "image/png")
            photo = Photo(
                claim_id=claim.id,
                position=i + 1,
                sha256=f"{i:064d}",
                original_key=key,
                derivative_key=key,
                content_type="image/png",
                byte_size=len(data),
                width=64,
                height=64,
            )
            session.add(photo)
            session.flush()
            session.add(
                PhotoLabel(decision_id=decision.id, photo_id=photo.id, grade=grade, adjuster_id=user.id)
            )
        session.commit()


def test_reviewed_samples_and_the_reviewed_set_gates(services: Services, gate_models: GateModels) -> None:
    labels = [(photo_png(g, v), g) for g in range(4) for v in range(3)]
    _review_labels(services, labels)
    with services.sessions() as session:
        got = promotion.reviewed_samples(session, services.store)
        assert len(got) == 12
        assert sorted((s.grade, s.damaged) for s in got) == sorted((g, int(g >= 1)) for _, g in labels)
        assert len(promotion.reviewed_samples(session, services.store, limit=5)) == 5
        # A later label of the same photo wins.
        photo = session.scalars(select(Photo).order_by(Photo.position)).first()
        decision = session.scalars(select(ReviewDecision)).one()
        session.add(
            ReviewDecision(
                claim_id=decision.claim_id, adjuster_id=decision.adjuster_id, action="adjust", currency="CNY"
            )
        )
        session.flush()
        later = session.scalars(select(ReviewDecision).order_by(ReviewDecision.id.desc())).first()
        session.add(
            PhotoLabel(decision_id=later.id, photo_id=photo.id, grade=3, adjuster_id=decision.adjuster_id)
        )
        session.commit()
        got = promotion.reviewed_samples(session, services.store)
        assert len(got) == 12 and got[0].grade == 3 and got[0].image == photo_png(0, 0)

    # No fixed set installed, but 12 reviewed photos: the reviewed set alone refuses the bad model.
    promotion.ensure_champion(services)
    promotion.register(services, gate_models.bad, actor="a")
    with pytest.raises(promotion.PromotionRefused) as refused:
        promotion.promote(services, "bad-3", actor="a")
    assert all(f.startswith("reviewed:") for f in refused.value.result.gate.failures)
    assert any("no fixed evaluation set" in n for n in refused.value.result.gate.notes)


def test_model_events_are_append_only(services: Services) -> None:
    with services.sessions() as session:
        session.add(ModelEvent(actor="a", action="promote", version="v1", reason="r"))
        session.commit()
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), services.engine.begin() as conn:
        conn.execute(text("UPDATE model_events SET reason = 'rewritten'"))
    with pytest.raises(sa_exc.DBAPIError, match="append-only"), services.engine.begin() as conn:
        conn.execute(text("DELETE FROM model_events"))
    with services.engine.connect() as conn:
        assert conn.execute(text("SELECT reason FROM model_events")).scalar_one() == "r"


# --------------------------------------------------------------------------------------------------
# The CLI


@pytest.fixture
def cli_env(tmp_path: Path, gate_models: GateModels, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "cli-data"
    monkeypatch.setenv("CLAIMLANE_DATA_DIR", str(data))
    monkeypatch.setenv("CLAIMLANE_MODEL_PATH", str(gate_models.good))
    return data


def test_cli_model_lifecycle(cli_env: Path, gate_models: GateModels, tmp_path: Path, capsys) -> None:
    from api.cli import main

    manifest = write_evalset(tmp_path / "evalset", per_grade=6, binary_only=2)
    assert main(["model", "evalset", "--from", str(manifest), "--split", "test", "--limit", "20"]) == 0
    assert "installed the fixed evaluation set: 14 photos" in capsys.readouterr().out
    assert main(["model", "evalset", "--from", str(manifest)]) == 1
    assert "--replace" in capsys.readouterr().err
    assert main(["model", "evalset", "--from", str(manifest), "--replace"]) == 0
    capsys.readouterr()

    assert main(["model", "register", str(gate_models.bad)]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == "bad-3" and "challenger" in out.err
    assert main(["model", "register", str(gate_models.bad)]) == 1
    assert "already registered" in capsys.readouterr().err

    assert main(["model", "promote", "bad-3"]) == 1
    out = capsys.readouterr().out
    assert "REFUSED" in out and "fixed" in out and "AUROC" in out and "fail" in out

    assert main(["model", "promote", "bad-3", "--override-reason", "operator knows best"]) == 0
    assert "OVERRIDDEN" in capsys.readouterr().out

    assert main(["model", "register", str(gate_models.ok), "--parent", "good-1", "--no-challenger"]) == 0
    capsys.readouterr()
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(lines) == {"good-1", "bad-3", "ok-2"}
    assert "champion" in lines["bad-3"] and "0.9700" in lines["good-1"]
    assert "good-1" in lines["ok-2"]  # parent

    assert main(["model", "rollback", "--reason", "too many wrong payouts"]) == 0
    assert capsys.readouterr().out.strip() == "good-1"
    assert main(["model", "rollback", "--reason", "again"]) == 1
    assert "no earlier champion" in capsys.readouterr().err

    assert main(["model", "promote", "ok-2"]) == 0
    assert "PROMOTED: ok-2" in capsys.readouterr().out

    services = build_services(Settings())
    try:
        assert [e[0] for e in _events(services)] == [
            "register",
            "set_challenger",
            "override",
            "register",
            "rollback",
            "promote",
        ]
        with services.sessions() as session:
            override = session.scalars(select(ModelEvent).where(ModelEvent.action == "override")).one()
            assert override.reason == "operator knows best" and override.actor.startswith("cli:")
    finally:
        services.close()


def test_cli_shadow_report_and_missing_training(
    cli_env: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from api.cli import main

    assert main(["model", "shadow-report"]) == 0
    assert '"total": 0' in capsys.readouterr().out
    monkeypatch.setitem(sys.modules, "training.retrain", None)  # import fails: not installed
    monkeypatch.setitem(sys.modules, "training.reviewed", None)
    assert main(["model", "retrain", "--quick"]) == 1
    assert "training" in capsys.readouterr().err
    assert main(["dataset", "export", "--out", str(cli_env / "export")]) == 1
