"""The service's Prometheus metrics, defined once, and the registry `GET /metrics` answers from.

Every process that does work records into these: API processes (requests, uploads, decisions in
embedded mode) and Celery workers (assessments). With several processes (``claimlane serve
--workers N``, Celery's prefork pool) prometheus-client's multiprocess mode is used: each process
writes its values to files under ``PROMETHEUS_MULTIPROC_DIR`` and a scrape adds them up, so a scrape
that lands on one worker still sees all of them. ``claimlane serve`` sets that directory (under the
data directory, emptied at start) before the workers fork; without it (tests, one process) the
values live in this process's default registry.

Business counters (claims filed, offers, reviews by reason, payouts...) are counted when the
transaction that made the change commits (`storage.metering`), never for a change that rolled back.
Gauges that describe the database as it is now (queue depth and age, open SLA clocks) are computed
at scrape time by the API (`services.operations.MetricsCollector`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.registry import REGISTRY, Collector

from config import runtime

MULTIPROC_ENV = runtime.MULTIPROC_ENV

# Latency buckets (seconds) for requests and stages: an upload-to-offer is a fraction of a second.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.175, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SHARE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

# -- technical ------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "claimlane_http_requests",
    "HTTP requests answered, by route template and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "claimlane_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["method", "route"],
    buckets=_LATENCY,
)
STAGE_SECONDS = Histogram(
    "claimlane_assessment_stage_seconds",
    "Time spent per stage of an assessment: decode (per photo), cnn (per claim), policy (decision, "
    "integrity checks and commit).",
    ["stage"],
    buckets=_LATENCY,
)
PHOTO_BYTES = Counter("claimlane_photo_bytes_received", "Bytes of photos received in uploads.")
PHOTOS_RECEIVED = Counter("claimlane_photos_received", "Photos received in uploads.")
OBJECT_STORE_ERRORS = Counter(
    "claimlane_object_store_errors", "Object store operations that failed.", ["operation"]
)
DATABASE_ERRORS = Counter(
    "claimlane_database_errors", "Database statements that raised an error, by kind.", ["kind"]
)
MODEL_SERVING = Gauge(
    "claimlane_model_serving",
    "1 for the model version this process grades with.",
    ["version"],
    multiprocess_mode="liveall",
)

# -- business -------------------------------------------------------------------------------------
CLAIMS_FILED = Counter("claimlane_claims_filed", "Claims filed (committed with their photos).")
ASSESSMENTS = Counter(
    "claimlane_assessments",
    "Assessments recorded, by model version and outcome: offer (the fast lane) or review.",
    ["model_version", "outcome"],
)
OFFERS_MADE = Counter("claimlane_offers_made", "Instant offers made, by currency.", ["currency"])
OFFERS_ACCEPTED = Counter("claimlane_offers_accepted", "Offers accepted, by the option chosen.", ["option"])
REVIEWS = Counter(
    "claimlane_reviews",
    "Claims sent to a person, by reason (a claim with two reasons counts in both).",
    ["reason"],
)
PAYOUTS = Counter(
    "claimlane_payouts", "Payout instructions written, by currency and option.", ["currency", "option"]
)
PAYOUT_AMOUNT = Counter(
    "claimlane_payout_amount", "Sum of payout instructions, by currency (major units).", ["currency"]
)
SLA = Counter(
    "claimlane_sla_deadlines",
    "Deadlines reached: met or missed, per clock (first_response: a person takes the case; decision: "
    "the claim is decided, by the fast lane or a person).",
    ["clock", "outcome"],
)
CONFIDENCE = Histogram(
    "claimlane_assessment_confidence",
    "The model's confidence in its claim grade, per model version (a drift signal).",
    ["model_version"],
    buckets=_SHARE,
)
P_DAMAGED = Histogram(
    "claimlane_assessment_p_damaged",
    "The model's probability that the parcel is damaged (grade >= 1), per model version (a drift signal).",
    ["model_version"],
    buckets=_SHARE,
)
FEEDBACK = Counter("claimlane_feedback", "Satisfaction ratings received, by rating (1-5).", ["rating"])


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def registry(extra: Iterable[Collector] = ()) -> CollectorRegistry:
    """A registry for one scrape: every process's values (multiprocess mode) or this process's,
    plus `extra` collectors (computed at scrape time)."""
    if multiprocess_dir():
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        reg = CollectorRegistry()
        reg.register(_Default())
    for collector in extra:
        reg.register(collector)
    return reg


class _Default(Collector):
    """This process's default registry, wrapped so a per-scrape registry can hold it beside extras."""

    def collect(self):
        yield from REGISTRY.collect()

    def describe(self):
        return []


_serving: set[str] = set()  # the versions this process has marked, so it can unmark them


def set_model_serving(version: str) -> None:
    """Mark `version` as the one this process grades with (and any other it marked before as not)."""
    for old in _serving - {version}:
        MODEL_SERVING.labels(old).set(0)
    _serving.add(version)
    MODEL_SERVING.labels(version).set(1)
