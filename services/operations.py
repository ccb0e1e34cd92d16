"""How the service is doing, for the people who run it: the scrape-time gauges of ``GET /metrics``
(queues and open deadlines, read from the database as it is now) and the figures of the team
leads' operations page (a period: today, or the last 30 days).

Counters that move with events (claims filed, offers, payouts...) are not here: they are counted
as their transactions commit (`storage.metering`, `config.metrics`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from claims.deadlines import SlaState, sla_status
from claims.lifecycle import Actor, ClaimState
from storage import operations as rows
from storage.tables import utcnow

logger = logging.getLogger(__name__)

# Queues the service keeps, by the claim states waiting in them.
QUEUES = {
    "assessment": (ClaimState.SUBMITTED, ClaimState.ASSESSING),
    "review": (ClaimState.IN_REVIEW,),
    "customer": (ClaimState.OFFERED, ClaimState.NEEDS_PHOTOS),
    "payout": (ClaimState.ACCEPTED, ClaimState.APPROVED),
}


class MetricsCollector(Collector):
    """Gauges computed at scrape time from the database: queue depth and age of the oldest item
    per queue, unpaid payout instructions, and open review deadlines by clock and state. A database
    that cannot be read gives no gauges (and `claimlane_metrics_collect_ok 0`), never a failed scrape."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ok = GaugeMetricFamily("claimlane_metrics_collect_ok", "1 when the database gauges could be read.")
        now = utcnow()
        try:
            with self.sessions() as session:
                states = rows.open_states(session)
                unpaid = rows.unpaid_payouts(session)
                hooks = rows.pending_webhooks(session)
                hooks_failed = rows.failed_webhooks(session)
                deadlines = rows.review_deadlines(session)
        except Exception:
            logger.exception("cannot read the database for /metrics")
            ok.add_metric([], 0)
            yield ok
            return
        depth = GaugeMetricFamily("claimlane_queue_depth", "Items waiting, by queue.", labels=["queue"])
        age = GaugeMetricFamily(
            "claimlane_queue_oldest_age_seconds",
            "How long the oldest item of a queue has waited.",
            labels=["queue"],
        )
        for queue, members in QUEUES.items():
            found = [states[s.value] for s in members if s.value in states]
            depth.add_metric([queue], sum(count for count, _ in found))
            oldest = min((since for _, since in found if since is not None), default=None)
            age.add_metric([queue], 0 if oldest is None else max(0.0, (now - oldest).total_seconds()))
        for queue, (count, oldest_at) in (("payout_instructions", unpaid), ("webhooks", hooks)):
            depth.add_metric([queue], count)
            age.add_metric([queue], 0 if oldest_at is None else max(0.0, (now - oldest_at).total_seconds()))
        failed = GaugeMetricFamily(
            "claimlane_webhook_messages_failed",
            "Webhook messages that exhausted their retries (redeliver them).",
        )
        failed.add_metric([], hooks_failed)
        sla = GaugeMetricFamily(
            "claimlane_sla_open",
            "Claims in review by clock and where its deadline stands (on_time, due_soon, overdue).",
            labels=["clock", "state"],
        )
        counts = _open_deadlines(deadlines, now)
        for (clock, state), count in sorted(counts.items()):
            sla.add_metric([clock, state], count)
        ok.add_metric([], 1)
        yield from (depth, age, sla, failed, ok)


def _open_deadlines(
    deadlines: Sequence[tuple[datetime | None, int | None, datetime | None]], now: datetime
) -> dict[tuple[str, str], int]:
    counts: Counter[tuple[str, str]] = Counter()
    for clock in ("first_response", "decision"):
        for state in SlaState:
            counts[(clock, state.value)] = 0
    for first_due, holder, decision_due in deadlines:
        if first_due is not None and holder is None:
            counts[("first_response", sla_status(first_due, now).state.value)] += 1
        if decision_due is not None:
            counts[("decision", sla_status(decision_due, now).state.value)] += 1
    return dict(counts)


# --------------------------------------------------------------------------------------------------
# The operations page: the figures of a period


@dataclass(frozen=True)
class Clock:
    met: int = 0
    missed: int = 0
    pending: int = 0

    @property
    def compliance(self) -> float | None:
        done = self.met + self.missed
        return None if done == 0 else self.met / done


@dataclass(frozen=True)
class Period:
    """What happened between `since` and `until` (and, for open cases, how things stand now)."""

    label: str
    since: datetime
    until: datetime
    claims: int
    assessed: int
    fast_lane: int
    payouts: dict[str, Decimal]  # currency -> sum (cash and store credit)
    payout_count: int
    reshipments: int
    sla: dict[str, Clock]  # first_response, decision
    reviews_by_reason: list[tuple[str, int]]
    workload: list[tuple[str, int, int]]  # adjuster, decisions in the period, cases held now
    fast_lane_checked: Clock  # met: confirmed by a person, missed: overturned, pending: none yet
    ratings: dict[int, int]
    comments: list[tuple[int, str]]
    daily: list[tuple[str, int, int, int]] = field(default_factory=list)  # day, claims, assessed, fast lane

    @property
    def automation_rate(self) -> float | None:
        return None if self.assessed == 0 else self.fast_lane / self.assessed

    @property
    def rating_count(self) -> int:
        return sum(self.ratings.values())

    @property
    def mean_rating(self) -> float | None:
        n = self.rating_count
        return None if n == 0 else sum(r * c for r, c in self.ratings.items()) / n


@dataclass(frozen=True)
class Overview:
    now: datetime
    today: Period
    month: Period
    oldest_open: tuple[str, timedelta] | None  # claim id, how long it has waited in review
    queue: dict[str, int]


def _period(
    session: Session, label: str, since: datetime, until: datetime, now: datetime, daily: bool
) -> Period:
    filed = rows.claims_filed(session, since, until)
    moves = rows.transitions(session, since, until, [ClaimState.OFFERED, ClaimState.IN_REVIEW])
    assessed = [
        m for m in moves if m.from_state == ClaimState.ASSESSING.value and m.actor == Actor.SYSTEM.value
    ]
    fast = [m for m in assessed if m.to_state == ClaimState.OFFERED.value]
    reasons: Counter[str] = Counter()
    for move in moves:
        if move.to_state == ClaimState.IN_REVIEW.value:
            reasons.update(move.reason_codes or ["unspecified"])
    money: dict[str, Decimal] = {}
    reshipments = 0
    paid = rows.payouts(session, since, until)
    for currency, _option, amount in paid:
        if amount is None:
            reshipments += 1
        else:
            money[currency] = money.get(currency, Decimal(0)) + amount
    # Decisions from `since` on: those in the period for the workload, any later one for the
    # fast-lane offers of the period that a person looked at afterwards (one read for both).
    since_then = sorted(rows.review_decisions(session, since, max(until, now)), key=lambda d: d.at)
    decisions = [d for d in since_then if d.at < until]
    held = rows.held_cases(session, now)
    per_adjuster = Counter(d.adjuster_id for d in decisions)
    names = rows.user_names(session, sorted(set(per_adjuster) | set(held)))
    workload = sorted(
        ((names.get(uid, f"user {uid}"), per_adjuster.get(uid, 0), held.get(uid, 0)) for uid in names),
        key=lambda w: (-w[1], -w[2], w[0]),
    )
    # Fast-lane offers of the period that a person later looked at (declined or lapsed, then
    # reviewed): approved as graded = confirmed, adjusted or denied = overturned.
    offered_ids = sorted({m.claim_id for m in fast})
    later = {d.claim_id: d for d in since_then if d.at < now}
    checked = Clock(
        met=sum(1 for c in offered_ids if c in later and later[c].action == "approve"),
        missed=sum(1 for c in offered_ids if c in later and later[c].action in ("adjust", "deny")),
        pending=sum(1 for c in offered_ids if c not in later),
    )
    ratings: Counter[int] = Counter()
    comments: list[tuple[int, str]] = []
    for rating, comment in rows.feedback(session, since, until):
        ratings[rating] += 1
        if comment:
            comments.append((rating, comment))
    series: list[tuple[str, int, int, int]] = []
    if daily:
        day = since
        while day < until:
            end = day + timedelta(days=1)
            series.append(
                (
                    day.date().isoformat(),
                    sum(1 for t in filed if day <= t < end),
                    sum(1 for m in assessed if day <= m.at < end),
                    sum(1 for m in fast if day <= m.at < end),
                )
            )
            day = end
    return Period(
        label=label,
        since=since,
        until=until,
        claims=len(filed),
        assessed=len(assessed),
        fast_lane=len(fast),
        payouts=dict(sorted(money.items())),
        payout_count=len(paid),
        reshipments=reshipments,
        sla=_sla(session, since, until, now, fast),
        reviews_by_reason=reasons.most_common(),
        workload=workload,
        fast_lane_checked=checked,
        ratings={r: ratings.get(r, 0) for r in range(1, 6)},
        comments=comments[:10],
        daily=series,
    )


def _sla(session: Session, since: datetime, until: datetime, now: datetime, fast: list) -> dict[str, Clock]:
    """Per clock, the claims whose deadline fell in the period or was met in it: met, missed, or
    still pending (open and not yet due). The fast lane decides within seconds: its decisions are
    met. A claim's deadlines are its latest (a claim back from needs_photos gets a new first-response
    clock)."""
    reviewed = [c for c in rows.claims_in_review_since(session, since) if c.entered_review_at is not None]
    takes = rows.first_takes(session, [c.id for c in reviewed])
    first = Counter[str]()
    decision = Counter[str]()
    decided_states = {ClaimState.APPROVED, ClaimState.DENIED, ClaimState.PAYOUT_INSTRUCTED}
    for claim in reviewed:
        entered = claim.entered_review_at
        assert entered is not None
        if entered >= until:
            continue
        due = claim.first_response_due_at
        taken = next((t for t in takes.get(claim.id, []) if t >= entered), None)
        if due is not None:
            if taken is not None:
                first["met" if taken <= due else "missed"] += 1
            else:
                first["missed" if now > due else "pending"] += 1
        due = claim.decision_due_at
        if due is not None:
            if ClaimState(claim.state) in decided_states and claim.decided_at is not None:
                decision["met" if claim.decided_at <= due else "missed"] += 1
            else:
                decision["missed" if now > due else "pending"] += 1
    decision["met"] += len({m.claim_id for m in fast})
    return {
        "first_response": Clock(first["met"], first["missed"], first["pending"]),
        "decision": Clock(decision["met"], decision["missed"], decision["pending"]),
    }


def overview(sessions: sessionmaker[Session], now: datetime | None = None) -> Overview:
    """Today (since midnight UTC) and the last 30 days (30 whole days up to tomorrow's midnight)."""
    now = now or utcnow()
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
    tomorrow = midnight + timedelta(days=1)
    with sessions() as session:
        today = _period(session, "Today", midnight, tomorrow, now, daily=False)
        month = _period(session, "Last 30 days", tomorrow - timedelta(days=30), tomorrow, now, daily=True)
        oldest = rows.oldest_in_review(session)
        states = rows.open_states(session)
    queue = {
        name: sum(states.get(s.value, (0, None))[0] for s in members) for name, members in QUEUES.items()
    }
    return Overview(
        now=now,
        today=today,
        month=month,
        oldest_open=None if oldest is None else (oldest[0], now - oldest[1]),
        queue=queue,
    )
