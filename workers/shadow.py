"""Shadow mode: grade every claim with the challenger too, and record what it would have decided.

When the model registry has a challenger (``Services.challenger_model()``) that differs from the
champion and ``Settings.shadow_mode`` is on, `workers.assessment` hands the champion's photo arrays
and decision to `grade_with_challenger` after the champion has graded the claim. The challenger grades
the same arrays, the payout policy decides on its probabilities with the same inputs, and the pair is
written as one `ShadowPrediction` row in the assessment's own transaction (`add_shadow_prediction`),
so a row exists exactly for each recorded assessment.

The challenger never decides: its grades do not touch the claim, its state or its audit trail, and
any failure of it (loading, running, deciding) is logged and ignored. `shadow_report` sums the rows
up for a promotion decision (agreement, the grade matrix, the decisions that would have changed, the
fast-lane rate of each model) and `render_shadow_report` prints it for the CLI.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.orm import Session

from claims.policy import Decision, combine_photos
from models.grades import GRADE_NAMES, NUM_GRADES
from models.inference import DamageModel
from storage import shadow as shadow_rows
from storage.tables import ShadowPrediction

if TYPE_CHECKING:
    from services.context import Services

logger = logging.getLogger(__name__)

PROB_DECIMALS = 6  # as workers.assessment: the recorded probabilities reproduce the decision
VERSION_CHARS = 64  # the version columns' width


@dataclass(frozen=True)
class ShadowOutcome:
    """What the challenger would have decided, beside the champion's decision (one row's values)."""

    champion_version: str
    challenger_version: str
    champion_probs: list[float]
    challenger_probs: list[float]
    champion_decision: dict[str, Any]
    challenger_decision: dict[str, Any]
    agree: bool


def decisions_agree(champion: dict[str, Any], challenger: dict[str, Any]) -> bool:
    """The same kind of decision (offer or review) on the same grade."""
    return champion.get("kind") == challenger.get("kind") and champion.get("grade") == challenger.get("grade")


def grade_with_challenger(
    services: Services,
    champion: DamageModel,
    batch: np.ndarray,
    *,
    champion_probs: list[float],
    champion_decision: Decision,
    declared_value: Decimal,
    currency: str,
) -> ShadowOutcome | None:
    """Grade `batch` (the claim's preprocessed photos, as the champion saw them) with the challenger
    and decide as the policy would. None when shadow mode is off, there is no challenger, it is the
    champion itself, or anything about it fails (logged): the caller's claim is never affected."""
    if not services.settings.shadow_mode:
        return None
    try:
        challenger = services.challenger_model()
        if challenger is None or challenger is champion or challenger.version == champion.version:
            return None
        # the same record the claim stores, the same threshold and gate rules
        from workers.assessment import decide_with_model, decision_record, unusable_photos

        if challenger.input_size != champion.input_size:
            logger.info(
                "shadow: challenger %s takes %spx input, the champion's photos were decoded at %spx; "
                "not scored", challenger.version, challenger.input_size, champion.input_size,
            )  # fmt: skip
            return None
        assessed = challenger.assess(batch)
        per_photo = [[round(float(p), PROB_DECIMALS) for p in row] for row in assessed.probs]
        claim_probs = [round(p, PROB_DECIMALS) for p in combine_photos(per_photo)]
        unusable = unusable_photos([str(i) for i in range(len(per_photo))], assessed.problems)
        decision = decide_with_model(
            challenger, claim_probs, declared_value, currency, services.policy, unusable
        )
        champion_record = decision_record(champion_decision)
        challenger_record = decision_record(decision)
        return ShadowOutcome(
            champion_version=champion.version[:VERSION_CHARS],
            challenger_version=challenger.version[:VERSION_CHARS],
            champion_probs=list(champion_probs),
            challenger_probs=claim_probs,
            champion_decision=champion_record,
            challenger_decision=challenger_record,
            agree=decisions_agree(champion_record, challenger_record),
        )
    except Exception:
        logger.exception("shadow grading with the challenger failed; the claim is not affected")
        return None


def record_shadow(services: Services, claim_id: str, outcome: ShadowOutcome | None) -> None:
    """Write the shadow row in a transaction of its own, after the claim's decision. Never raises."""
    if outcome is None:
        return
    try:
        with services.sessions() as session:
            add_shadow_prediction(session, claim_id, outcome)
            session.commit()
    except Exception:
        logger.exception("cannot record the shadow prediction of claim %s; ignored", claim_id)


def add_shadow_prediction(session: Session, claim_id: str, outcome: ShadowOutcome) -> None:
    """Add the row to the caller's transaction. Never raises."""
    try:
        session.add(
            ShadowPrediction(
                claim_id=claim_id,
                champion_version=outcome.champion_version,
                challenger_version=outcome.challenger_version,
                champion_probs=outcome.champion_probs,
                challenger_probs=outcome.challenger_probs,
                champion_decision=outcome.champion_decision,
                challenger_decision=outcome.challenger_decision,
                agree=outcome.agree,
            )
        )
    except Exception:
        logger.exception("cannot record the shadow prediction of claim %s; ignored", claim_id)


# --------------------------------------------------------------------------------------------------
# The report


def _grade(decision: dict[str, Any], probs: list[float] | None) -> int | None:
    grade = decision.get("grade")
    if isinstance(grade, int) and 0 <= grade < NUM_GRADES:
        return grade
    if probs and len(probs) == NUM_GRADES:  # a decision without a grade: the most likely one
        return max(range(NUM_GRADES), key=lambda g: (probs[g], -g))
    return None


def _brief(decision: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": decision.get("kind"),
        "grade": decision.get("grade"),
        "amount": decision.get("amount"),
        "currency": decision.get("currency"),
        "reasons": decision.get("reasons", []),
    }


def _differs(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return not decisions_agree(a, b) or a.get("amount") != b.get("amount")


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def shadow_report(
    session: Session, *, since: datetime | None = None, challenger_version: str | None = None
) -> dict[str, Any]:
    """Sum up the shadow predictions (recorded at or after `since`, of one challenger version if
    given): one row per assessment graded by both models.

    Keys: ``since``, ``challenger_version``, ``total``, ``agree``, ``agreement_rate`` (same kind and
    grade), ``pairs`` (rows per champion/challenger version pair), ``grade_names``, ``grade_matrix``
    (rows: champion grade, columns: challenger grade, counts), ``per_grade_agreement`` (by champion
    grade: rows and the share the challenger graded the same), ``kinds`` and ``fast_lane_rate``
    (share of offers) of each model, and ``changed``: every assessment on which the challenger's
    decision would have differed (kind, grade or amount), oldest first, with both decisions."""
    rows = shadow_rows.predictions(session, since=since, challenger_version=challenger_version)

    matrix = [[0] * NUM_GRADES for _ in range(NUM_GRADES)]
    pairs: Counter[tuple[str, str]] = Counter()
    kinds: dict[str, Counter[str]] = {"champion": Counter(), "challenger": Counter()}
    changed: list[dict[str, Any]] = []
    agree = 0
    for row in rows:
        champion, challenger = row.champion_decision or {}, row.challenger_decision or {}
        pairs[(row.champion_version, row.challenger_version)] += 1
        agree += bool(row.agree)
        kinds["champion"][str(champion.get("kind"))] += 1
        kinds["challenger"][str(challenger.get("kind"))] += 1
        g_champion = _grade(champion, row.champion_probs)
        g_challenger = _grade(challenger, row.challenger_probs)
        if g_champion is not None and g_challenger is not None:
            matrix[g_champion][g_challenger] += 1
        if _differs(champion, challenger):
            changed.append(
                {
                    "claim_id": row.claim_id,
                    "at": row.at.isoformat() if row.at else None,
                    "champion_version": row.champion_version,
                    "challenger_version": row.challenger_version,
                    "champion": _brief(champion),
                    "challenger": _brief(challenger),
                }
            )

    total = len(rows)
    per_grade = []
    for g in range(NUM_GRADES):
        count = sum(matrix[g])
        per_grade.append(
            {"grade": g, "name": GRADE_NAMES[g], "count": count, "agreement_rate": _rate(matrix[g][g], count)}
        )
    return {
        "since": since.isoformat() if since is not None else None,
        "challenger_version": challenger_version,
        "total": total,
        "agree": agree,
        "disagree": total - agree,
        "agreement_rate": _rate(agree, total),
        "pairs": [
            {"champion_version": c, "challenger_version": ch, "count": n}
            for (c, ch), n in sorted(pairs.items())
        ],
        "grade_names": list(GRADE_NAMES),
        "grade_matrix": matrix,
        "per_grade_agreement": per_grade,
        "kinds": {who: dict(sorted(counter.items())) for who, counter in kinds.items()},
        "fast_lane_rate": {who: _rate(counter.get("offer", 0), total) for who, counter in kinds.items()},
        "changed": changed,
    }


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _money(decision: dict[str, Any]) -> str:
    if decision.get("amount") is None:
        return "-"
    return f"{decision['amount']} {decision.get('currency') or ''}".strip()


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def render_shadow_report(report: dict[str, Any], *, max_changed: int = 50) -> str:
    """The report as plain text: a summary, the grade matrix, and the changed decisions."""
    out: list[str] = []
    scope = []
    if report.get("since"):
        scope.append(f"since {report['since']}")
    if report.get("challenger_version"):
        scope.append(f"challenger {report['challenger_version']}")
    out.append("Shadow predictions" + (f" ({', '.join(scope)})" if scope else ""))
    total = report["total"]
    if total == 0:
        out.append("no shadow predictions recorded (is there a challenger, and is shadow mode on?)")
        return "\n".join(out) + "\n"
    for pair in report["pairs"]:
        out.append(
            f"  champion {pair['champion_version']} vs challenger {pair['challenger_version']}: "
            f"{pair['count']} assessments"
        )
    out.append(
        f"Agreement (same decision kind and grade): {report['agree']}/{total} ({_pct(report['agreement_rate'])})"
    )
    out.append(
        f"Fast-lane rate: champion {_pct(report['fast_lane_rate']['champion'])}, "
        f"challenger {_pct(report['fast_lane_rate']['challenger'])}"
    )
    out.append("")
    names = report["grade_names"]
    header = ["champion \\ challenger", *names, "total", "agree"]
    rows = []
    for g, counts in enumerate(report["grade_matrix"]):
        stats = report["per_grade_agreement"][g]
        rows.append([names[g], *(str(c) for c in counts), str(stats["count"]), _pct(stats["agreement_rate"])])
    out.extend(_table(header, rows))
    changed = report["changed"]
    out.append("")
    out.append(f"Decisions the challenger would have made differently: {len(changed)}")
    if changed:
        rows = []
        for item in changed[:max_changed]:
            champion, challenger = item["champion"], item["challenger"]
            rows.append(
                [
                    item["claim_id"],
                    f"{champion['kind']} g{champion['grade']}",
                    _money(champion),
                    f"{challenger['kind']} g{challenger['grade']}",
                    _money(challenger),
                ]
            )
        out.extend(_table(["claim", "champion", "amount", "challenger", "amount"], rows))
        if len(changed) > max_changed:
            out.append(f"... and {len(changed) - max_changed} more")
    return "\n".join(out) + "\n"
