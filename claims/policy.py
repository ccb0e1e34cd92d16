"""The payout policy: from the model's grade probabilities and the declared value to an offer or a review.

Pure functions over a versioned :class:`PolicyConfig`. The policy may pay (the "fast lane": an instant
offer the customer can accept) or pass the claim to a human adjuster; it never denies. A claim the
machine is unsure of, or that it would pay nothing for, is exactly the claim a person should see, so
every path that does not offer ends in :class:`Review`, with every reason that applied.

Money is Decimal throughout. Probabilities stay floats (they come from the model) until the one
place a probability becomes part of a decision record, where it is rounded to 6 decimals and turned
into a Decimal, so the comparison with the threshold is exact and reproducible from the record.
"""

from __future__ import annotations

import math
import numbers
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from claims.money import (
    CURRENCIES,
    MoneyError,
    format_money,
    is_on_minor_unit,
    money_context,
    parse_currency,
    quantize,
    toml_decimal,
)

# The grade scale of models/grades.py (0 none, 1 cosmetic, 2 structural, 3 severe). Repeated here,
# not imported, so the policy reads and tests on its own; tests/claims checks the two agree.
NUM_GRADES = 4
GRADE_NAMES: tuple[str, ...] = ("none", "cosmetic", "structural", "severe")

# The policy file shipped with the code. Computing a path is not I/O; the caller reads the file.
POLICIES_DIR = Path(__file__).resolve().parent / "policies"
DEFAULT_POLICY_FILE = POLICIES_DIR / "2026-12-v3.toml"

# How far a probability vector's sum may be from 1. Model outputs are float32 and may be rounded to
# 6 decimals on the way (JSON), so an exact sum is not to be expected; anything further off is a bug.
PROB_SUM_TOLERANCE = 1e-4

# Digits a confidence is rounded to before it becomes a Decimal (the model's output precision).
CONFIDENCE_DECIMALS = 6

# Limits on knobs that have no natural bound, to catch a typo ("720" hours meant as "72").
MAX_OFFER_VALID_HOURS = 24 * 30


class OptionKind(StrEnum):
    """What a customer may take an offer as."""

    CASH = "cash"
    RESHIPMENT = "reshipment"
    STORE_CREDIT = "store_credit"


class PolicyError(ValueError):
    """A policy configuration (or policy file) that cannot be used, with what is wrong in it."""


# --------------------------------------------------------------------------------------------------
# Configuration


def _decimal(name: str, value: object) -> Decimal:
    """`value` as a finite Decimal. Ints are exact and fine; floats are refused, because by the time
    a float exists the exact value written in the policy may already be lost (0.1 is not 0.1)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise PolicyError(f"{name} must be a Decimal (or an int), got {type(value).__name__} {value!r}")
    d = Decimal(value)
    if not d.is_finite():
        raise PolicyError(f"{name} must be finite, got {d}")
    return d


def _per_currency(name: str, value: Mapping[str, Any]) -> Mapping[str, Decimal]:
    """A read-only {currency: positive amount on the currency's minor unit} mapping."""
    if not isinstance(value, Mapping):
        raise PolicyError(f"{name} must be a mapping of currency code to amount, got {type(value).__name__}")
    out: dict[str, Decimal] = {}
    for code, amount in value.items():
        if not isinstance(code, str) or code not in CURRENCIES:
            raise PolicyError(f"{name}: {code!r} is not an active ISO 4217 code in upper case")
        d = _decimal(f"{name}.{code}", amount)
        if d <= 0:
            raise PolicyError(f"{name}.{code} must be greater than zero, got {d}")
        if not is_on_minor_unit(d, code):
            raise PolicyError(f"{name}.{code} has more decimal places than {code} allows: {d}")
        out[code] = d
    return MappingProxyType(out)


def _default_ceiling() -> Mapping[str, Decimal]:
    return {"CNY": Decimal("2000")}


def _default_coverage() -> Mapping[str, Decimal]:
    return {"CNY": Decimal("20000")}


@dataclass(frozen=True)
class PolicyConfig:
    """Every knob of the payout policy, under one version that each decision records.

    - `grade_fractions[g]`: the share of the (covered) declared value paid for grade g. In [0, 1] and
      non-decreasing with the grade, so worse damage never pays less.
    - `confidence_threshold`: the fast lane needs the most likely grade to have at least this
      probability; below it a person looks.
    - `fast_lane_grades`: grades that may be paid instantly. Grades 0 and 1 are not, by default: a
      claim the model thinks shows no or cosmetic damage goes to a person (the machine never denies).
      Each fast-lane grade must pay a positive fraction, or its "offer" would be nothing.
    - `fast_lane_ceiling`: per currency, the fast lane only takes declared values strictly below it.
      A currency without a ceiling never takes the fast lane (nobody has decided what is "small").
    - `coverage_limit`: per currency, the most a claim's declared value counts for. A currency
      without a limit is covered up to the declared value.
    - `store_credit_bonus`: store credit is worth this much more than cash (0.10 = 10% more).
    - `options`: the ways an offer can be taken, in the order they are shown.
    - `offer_valid_hours`: how long an offer stands before it expires (and goes to a person).
    - `fast_lane_rule`: `most_likely` (v1: the most likely grade, if its probability reaches
      `confidence_threshold`) or `exceedance` (v2: the highest fast-lane grade g whose P(grade >= g)
      reaches the model's certified threshold; see `decide`).
    - `max_overpay_rate`: with `exceedance`, the largest share of instant offers that may pay for a
      higher grade than the true one. The model publishes, per rate, the threshold that keeps it
      (chosen from data with Learn-then-Test, `models.fastlane`); a model that certifies none for this
      rate gets no fast lane.

    - `claim_window_days`: a claim filed more than this many days after the shipment's delivery goes
      to a person (`outside_claim_window`); None: no window.
    - `repeat_claimant_max_claims`, `repeat_claimant_days`: a customer with more than this many claims
      filed in this many days loses the fast lane (`repeat_claimant`); None: no limit.

    `fast_lane_rule` and `max_overpay_rate` arrived with policy 2026-12-v2, the claim window and the
    repeat-claimant knobs with 2026-12-v3; files of earlier versions do not name them and keep their
    meaning (`most_likely`, no window, no limit).

    Validated on construction; a PolicyError says which knob is wrong. Mappings are copied into
    read-only views, so a config cannot change after a decision has recorded its version.
    """

    version: str
    grade_fractions: tuple[Decimal, Decimal, Decimal, Decimal] = (
        Decimal("0"),
        Decimal("0"),
        Decimal("0.5"),
        Decimal("1.0"),
    )
    confidence_threshold: Decimal = Decimal("0.9")
    fast_lane_grades: frozenset[int] = frozenset({2, 3})
    fast_lane_ceiling: Mapping[str, Decimal] = field(default_factory=_default_ceiling)
    coverage_limit: Mapping[str, Decimal] = field(default_factory=_default_coverage)
    store_credit_bonus: Decimal = Decimal("0.10")
    options: tuple[str, ...] = (OptionKind.CASH, OptionKind.RESHIPMENT, OptionKind.STORE_CREDIT)
    offer_valid_hours: int = 72
    fast_lane_rule: str = "most_likely"
    max_overpay_rate: Decimal = Decimal("0.02")
    claim_window_days: int | None = None
    repeat_claimant_max_claims: int | None = None
    repeat_claimant_days: int = 30

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.version, str) or not self.version.strip():
            raise PolicyError(f"version must be a non-empty string, got {self.version!r}")

        fractions = tuple(self.grade_fractions)
        if len(fractions) != NUM_GRADES:
            raise PolicyError(f"grade_fractions needs {NUM_GRADES} values (grades 0-3), got {len(fractions)}")
        fractions = tuple(_decimal(f"grade_fractions[{g}]", f) for g, f in enumerate(fractions))
        for g, f in enumerate(fractions):
            if not 0 <= f <= 1:
                raise PolicyError(f"grade_fractions[{g}] must be between 0 and 1, got {f}")
        for g in range(1, NUM_GRADES):
            if fractions[g] < fractions[g - 1]:
                raise PolicyError(
                    f"grade_fractions must not decrease with the grade (worse damage never pays less): "
                    f"grade {g} pays {fractions[g]} < grade {g - 1} pays {fractions[g - 1]}"
                )
        put("grade_fractions", fractions)

        threshold = _decimal("confidence_threshold", self.confidence_threshold)
        if not 0 < threshold <= 1:
            raise PolicyError(f"confidence_threshold must be in (0, 1], got {threshold}")
        put("confidence_threshold", threshold)

        if isinstance(self.fast_lane_grades, str | bytes) or not isinstance(self.fast_lane_grades, Iterable):
            raise PolicyError(f"fast_lane_grades must be a set of grades, got {self.fast_lane_grades!r}")
        grades = frozenset(self.fast_lane_grades)
        for g in grades:
            if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < NUM_GRADES:
                raise PolicyError(f"fast_lane_grades: {g!r} is not a grade 0-{NUM_GRADES - 1}")
            if fractions[g] == 0:
                raise PolicyError(f"fast-lane grade {g} pays grade_fractions[{g}] = 0: an offer of nothing")
        put("fast_lane_grades", grades)

        put("fast_lane_ceiling", _per_currency("fast_lane_ceiling", self.fast_lane_ceiling))
        put("coverage_limit", _per_currency("coverage_limit", self.coverage_limit))

        bonus = _decimal("store_credit_bonus", self.store_credit_bonus)
        if not 0 <= bonus <= 1:
            raise PolicyError(f"store_credit_bonus must be between 0 and 1, got {bonus}")
        put("store_credit_bonus", bonus)

        if isinstance(self.options, str) or not isinstance(self.options, Iterable):
            raise PolicyError(f"options must be a list of option kinds, got {self.options!r}")
        options = tuple(self.options)
        kinds: list[OptionKind] = []
        for kind in options:
            try:
                kinds.append(OptionKind(kind))
            except ValueError:
                known = ", ".join(k.value for k in OptionKind)
                raise PolicyError(f"options: unknown option {kind!r} (known: {known})") from None
        if not kinds:
            raise PolicyError("options must offer at least one way to take an offer")
        if len(set(kinds)) != len(kinds):
            raise PolicyError(f"options lists an option twice: {list(options)}")
        put("options", tuple(kinds))

        hours = self.offer_valid_hours
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= MAX_OFFER_VALID_HOURS:
            raise PolicyError(
                f"offer_valid_hours must be a whole number 1-{MAX_OFFER_VALID_HOURS}, got {hours!r}"
            )

        if self.fast_lane_rule not in FAST_LANE_RULES:
            raise PolicyError(
                f"fast_lane_rule must be one of {list(FAST_LANE_RULES)}, got {self.fast_lane_rule!r}"
            )
        rate = _decimal("max_overpay_rate", self.max_overpay_rate)
        if not 0 < rate < 1:
            raise PolicyError(f"max_overpay_rate must be in (0, 1), got {rate}")
        put("max_overpay_rate", rate)

        for name, low in (("claim_window_days", 1), ("repeat_claimant_max_claims", 1)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise PolicyError(f"{name} must be a whole number >= {low} (or absent), got {value!r}")
        days = self.repeat_claimant_days
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
            raise PolicyError(f"repeat_claimant_days must be a whole number 1-366, got {days!r}")

    def __hash__(self) -> int:
        # The generated hash would fail on the mapping fields; hash their items instead.
        return hash(
            (
                self.version,
                self.grade_fractions,
                self.confidence_threshold,
                self.fast_lane_grades,
                frozenset(self.fast_lane_ceiling.items()),
                frozenset(self.coverage_limit.items()),
                self.store_credit_bonus,
                self.options,
                self.offer_valid_hours,
                self.fast_lane_rule,
                self.max_overpay_rate,
                self.claim_window_days,
                self.repeat_claimant_max_claims,
                self.repeat_claimant_days,
            )
        )


_POLICY_KEYS = frozenset(
    {
        "version",
        "grade_fractions",
        "confidence_threshold",
        "fast_lane_grades",
        "fast_lane_ceiling",
        "coverage_limit",
        "store_credit_bonus",
        "options",
        "offer_valid_hours",
    }
)
# Knobs added by later policy versions: optional, so older files keep meaning what they said.
_OPTIONAL_POLICY_KEYS = frozenset(
    {
        "fast_lane_rule",
        "max_overpay_rate",
        "claim_window_days",
        "repeat_claimant_max_claims",
        "repeat_claimant_days",
    }
)
FAST_LANE_RULES = ("most_likely", "exceedance")


def _toml_decimal(name: str, value: object) -> Decimal:
    return toml_decimal(name, value, error=PolicyError)


def parse_policy(text: str) -> PolicyConfig:
    """A PolicyConfig from the text of a TOML policy file (the caller reads the file).

    Every knob must be present: a policy file is the complete record of what a version decided, so
    nothing silently falls back to a default in code that may change later. Unknown keys are refused
    (a typo would otherwise be ignored). Decimal knobs are TOML strings or integers, never floats.
    Raises PolicyError.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _POLICY_KEYS - _OPTIONAL_POLICY_KEYS)
    if unknown:
        raise PolicyError(f"policy has unknown keys: {', '.join(unknown)}")
    missing = sorted(_POLICY_KEYS - set(data))
    if missing:
        raise PolicyError(f"policy is missing keys: {', '.join(missing)}")

    fractions = data["grade_fractions"]
    if not isinstance(fractions, list):
        raise PolicyError(f"grade_fractions must be a list, got {fractions!r}")
    grades = data["fast_lane_grades"]
    if not isinstance(grades, list):
        raise PolicyError(f"fast_lane_grades must be a list, got {grades!r}")
    options = data["options"]
    if not isinstance(options, list):
        raise PolicyError(f"options must be a list, got {options!r}")

    def per_currency(name: str) -> dict[str, Decimal]:
        table = data[name]
        if not isinstance(table, dict):
            raise PolicyError(f"{name} must be a table of currency = amount, got {table!r}")
        return {code: _toml_decimal(f"{name}.{code}", v) for code, v in table.items()}

    return PolicyConfig(
        version=data["version"],
        grade_fractions=tuple(  # type: ignore[arg-type]  # length checked by PolicyConfig
            _toml_decimal(f"grade_fractions[{i}]", v) for i, v in enumerate(fractions)
        ),
        confidence_threshold=_toml_decimal("confidence_threshold", data["confidence_threshold"]),
        fast_lane_grades=frozenset(grades),
        fast_lane_ceiling=per_currency("fast_lane_ceiling"),
        coverage_limit=per_currency("coverage_limit"),
        store_credit_bonus=_toml_decimal("store_credit_bonus", data["store_credit_bonus"]),
        options=tuple(options),
        offer_valid_hours=data["offer_valid_hours"],
        fast_lane_rule=data.get("fast_lane_rule", "most_likely"),
        max_overpay_rate=_toml_decimal("max_overpay_rate", data.get("max_overpay_rate", "0.02")),
        claim_window_days=data.get("claim_window_days"),
        repeat_claimant_max_claims=data.get("repeat_claimant_max_claims"),
        repeat_claimant_days=data.get("repeat_claimant_days", 30),
    )


# --------------------------------------------------------------------------------------------------
# Probabilities


def _check_probs(probs: Sequence[float], what: str) -> tuple[float, ...]:
    """`probs` as a tuple of NUM_GRADES floats after checking it is a distribution (ValueError)."""
    if isinstance(probs, str | bytes) or not isinstance(probs, Sequence | Iterable):
        raise ValueError(f"{what}: expected {NUM_GRADES} probabilities, got {probs!r}")
    values = tuple(probs)
    if len(values) != NUM_GRADES:
        raise ValueError(f"{what}: expected {NUM_GRADES} probabilities (grades 0-3), got {len(values)}")
    out: list[float] = []
    for p in values:
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise ValueError(f"{what}: probabilities must be numbers, got {p!r}")
        p = float(p)
        if not math.isfinite(p) or p < 0:
            raise ValueError(f"{what}: probabilities must be finite and >= 0, got {p!r}")
        out.append(p)
    total = math.fsum(out)
    if abs(total - 1.0) > PROB_SUM_TOLERANCE:
        raise ValueError(f"{what}: probabilities must sum to 1, got {total!r}")
    return tuple(out)


def _exceedance(probs: Sequence[float]) -> tuple[float, ...]:
    """P(grade >= k) for k = 0..3 from per-grade probabilities: suffix sums, so non-increasing."""
    total = math.fsum(probs)
    out = [0.0] * NUM_GRADES
    acc = 0.0
    for k in range(NUM_GRADES - 1, -1, -1):
        acc += probs[k] / total
        out[k] = acc
    out[0] = 1.0
    return tuple(out)


def combine_photos(per_photo: Sequence[Sequence[float]]) -> tuple[float, float, float, float]:
    """The claim's grade probabilities from each photo's: the claim is as damaged as its most damaged photo.

    P(claim grade >= k) = max over photos of P_photo(grade >= k), for k = 1..3.

    Why the maximum: customers photograph the same damage from several angles, and damage is often
    visible from one angle only. Averaging would dilute a dent seen in one photo of four into "probably
    fine"; noisy-OR (1 - prod(1 - p)) would treat one dent photographed twice as two independent
    pieces of evidence and inflate the grade. The maximum counts the clearest view once.

    Why on exceedance probabilities rather than per grade: each photo's exceedance curve
    k -> P(grade >= k) is non-increasing and starts at 1; the pointwise maximum of such curves is too,
    so differencing it, P(grade = k) = P(>= k) - P(>= k+1), gives a proper distribution. (A per-grade
    maximum would not sum to 1.) Each photo is normalised first, so float noise in its sum does not
    leak in. One photo combines to itself, up to float rounding.

    Raises ValueError for no photos or a photo that is not NUM_GRADES finite, non-negative
    probabilities summing to 1 (within PROB_SUM_TOLERANCE).
    """
    if isinstance(per_photo, str | bytes) or not isinstance(per_photo, Sequence | Iterable):
        raise ValueError(f"expected a sequence of per-photo probabilities, got {per_photo!r}")
    photos = [_check_probs(p, f"photo {i}") for i, p in enumerate(per_photo)]
    if not photos:
        raise ValueError("a claim needs at least one photo")
    curves = [_exceedance(p) for p in photos]
    ge = [max(c[k] for c in curves) for k in range(NUM_GRADES)] + [0.0]
    p = [max(0.0, ge[k] - ge[k + 1]) for k in range(NUM_GRADES)]
    return (p[0], p[1], p[2], p[3])


# --------------------------------------------------------------------------------------------------
# Decisions


class ReasonCode(StrEnum):
    """Why a claim goes to a person. Stored and shown by value; the order here is the order reported."""

    LOW_CONFIDENCE = "low_confidence"
    # A photo the model's photo gate finds unusable (not a parcel, too dark, blurred, too far).
    PHOTO_UNUSABLE = "photo_unusable"
    # Grade 0 or 1 (or any grade not in the fast lane): a person looks; the machine never denies.
    GRADE_NOT_FAST_LANE = "grade_not_fast_lane"
    VALUE_ABOVE_FAST_LANE_CEILING = "value_above_fast_lane_ceiling"
    CURRENCY_NOT_FAST_LANE = "currency_not_fast_lane"
    # A fast-lane grade whose payout rounds to nothing (a tiny declared value): never offer zero.
    PAYOUT_ROUNDS_TO_ZERO = "payout_rounds_to_zero"
    # Claim integrity (claims.integrity): checks a carrier's fraud team expects. None denies anything;
    # each only keeps the claim out of the fast lane, so a person looks.
    SHIPMENT_UNVERIFIED = "shipment_unverified"
    VALUE_ABOVE_INSURED = "value_above_insured"
    NOT_DELIVERED = "not_delivered"
    OUTSIDE_CLAIM_WINDOW = "outside_claim_window"
    DUPLICATE_PARCEL = "duplicate_parcel"
    PARCEL_ALREADY_PAID = "parcel_already_paid"
    PHOTO_REUSED = "photo_reused"
    PHOTO_PREDATES_DELIVERY = "photo_predates_delivery"
    SCREENSHOT = "screenshot"
    REPEAT_CLAIMANT = "repeat_claimant"
    # Set by the lifecycle, not by decide(): they explain why a claim reached review later.
    CUSTOMER_DECLINED = "customer_declined"
    OFFER_EXPIRED = "offer_expired"
    PHOTOS_ADDED = "photos_added"
    SHIPMENT_ARRIVED = "shipment_arrived"
    MODEL_UNAVAILABLE = "model_unavailable"


@dataclass(frozen=True)
class OfferOption:
    """One way to take an offer. `amount` is None for a reshipment (the item, not money)."""

    kind: str
    amount: Decimal | None
    description: str


@dataclass(frozen=True)
class Offer:
    """A fast-lane offer: the customer may accept it (as any of `options`) or decline it for a review."""

    grade: int
    confidence: Decimal
    amount: Decimal
    currency: str
    options: tuple[OfferOption, ...]
    policy_version: str

    def __post_init__(self) -> None:
        if not self.amount > 0:
            raise ValueError(f"an offer must pay something, got {self.amount}")
        if not self.options:
            raise ValueError("an offer needs at least one option")


class PhotoProblem(StrEnum):
    """Why the photo gate refuses a photo; each has a sentence telling the customer what to retake."""

    NOT_A_PARCEL = "not_a_parcel"
    DARK = "dark"
    BLURRED = "blurred"
    TOO_FAR = "too_far"


_RETAKE_TEXT: Mapping[PhotoProblem, str] = MappingProxyType(
    {
        PhotoProblem.NOT_A_PARCEL: "does not look like a photo of the parcel: retake it showing the parcel "
        "and its damage",
        PhotoProblem.DARK: "is too dark: retake it in better light",
        PhotoProblem.BLURRED: "is blurred: hold the phone still and retake it",
        PhotoProblem.TOO_FAR: "shows the parcel too far away: retake it closer, so the damage fills the photo",
    }
)


@dataclass(frozen=True)
class UnusablePhoto:
    """A photo to retake: `position` is 1-based, in the order the customer sent the photos."""

    position: int
    photo_id: str
    problem: PhotoProblem

    @property
    def message(self) -> str:
        return f"Photo {self.position} {_RETAKE_TEXT[self.problem]}."


@dataclass(frozen=True)
class Review:
    """The claim goes to a human adjuster, for every reason in `reasons` (never empty).

    `grade` and `confidence` are what the model said, shown to the adjuster; both are None when there
    is no assessment (ReasonCode.MODEL_UNAVAILABLE). `retake` lists the photos the photo gate refused
    (reason PHOTO_UNUSABLE), so the customer learns which photo to take again and why.
    """

    grade: int | None
    confidence: Decimal | None
    reasons: tuple[ReasonCode, ...]
    policy_version: str
    retake: tuple[UnusablePhoto, ...] = ()

    def __post_init__(self) -> None:
        if not self.reasons:
            raise ValueError("a review needs at least one reason")
        if (self.grade is None) != (self.confidence is None):
            raise ValueError("grade and confidence are given together or not at all")


# There is deliberately no Deny: denying is for a person to do (an adjuster, in_review -> denied).
Decision = Offer | Review


def _check_grade(grade: int) -> int:
    if isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade < NUM_GRADES:
        raise ValueError(f"grade must be 0-{NUM_GRADES - 1}, got {grade!r}")
    return grade


def _check_declared(declared_value: Decimal, currency: str) -> tuple[Decimal, str]:
    """The declared value and currency, checked: a positive Decimal on the currency's minor unit."""
    currency = parse_currency(currency)
    if isinstance(declared_value, bool) or not isinstance(declared_value, Decimal):
        raise MoneyError(f"declared value must be a Decimal, got {type(declared_value).__name__}")
    if not declared_value.is_finite() or declared_value <= 0:
        raise MoneyError(f"declared value must be greater than zero, got {declared_value}")
    if not is_on_minor_unit(declared_value, currency):
        raise MoneyError(f"declared value has more decimal places than {currency} allows: {declared_value}")
    return declared_value, currency


def payout_amount(grade: int, declared_value: Decimal, currency: str, config: PolicyConfig) -> Decimal:
    """What grade `grade` pays: fraction(grade) x min(declared value, the currency's coverage limit).

    A currency without a coverage limit is covered up to its declared value. Rounded to the currency's
    minor unit with ROUND_HALF_UP: it is how a customer or adjuster rounds by hand, so the amount can
    be checked on paper, and it never pays more than half a minor unit away from the exact share.
    Since the declared value and the limit are both whole minor units (both are checked) and the
    fraction is at most 1, rounding cannot lift the amount above either; the final ``min`` only
    states that guarantee. Raises ValueError (MoneyError for money) on bad input.
    """
    grade = _check_grade(grade)
    declared_value, currency = _check_declared(declared_value, currency)
    base = min(declared_value, config.coverage_limit.get(currency, declared_value))
    with money_context():
        amount = quantize(config.grade_fractions[grade] * base, currency, ROUND_HALF_UP)
    return min(amount, base)


def _option(kind: OptionKind, amount: Decimal, currency: str, config: PolicyConfig) -> OfferOption:
    if kind is OptionKind.CASH:
        return OfferOption(kind, amount, f"Cash payout of {format_money(amount, currency)}")
    if kind is OptionKind.RESHIPMENT:
        return OfferOption(kind, None, "We send a replacement of the same item")
    with money_context():
        credit = quantize(amount * (1 + config.store_credit_bonus), currency, ROUND_HALF_UP)
    if config.store_credit_bonus:
        text = f"Store credit of {format_money(credit, currency)}, worth {_percent(config.store_credit_bonus)} more"
    else:
        text = f"Store credit of {format_money(credit, currency)}"
    return OfferOption(kind, credit, text)


def _confidence(p: float) -> Decimal:
    """A probability as the Decimal a decision records: rounded to 6 decimals, via str, so 0.95 is
    Decimal('0.95') and not the binary float's 0.9499999999999999555910790149937..."""
    return Decimal(str(round(p, CONFIDENCE_DECIMALS)))


def certified_threshold(
    thresholds: Mapping[Decimal, Decimal | None] | None, max_overpay_rate: Decimal
) -> Decimal | None:
    """The model's offer threshold for the policy's overpay rate: the one certified for the largest
    rate not above `max_overpay_rate` (a threshold that keeps 1% also keeps 2%). None when the model
    certifies none: then nothing takes the fast lane."""
    usable = [
        (rate, t) for rate, t in (thresholds or {}).items() if rate <= max_overpay_rate and t is not None
    ]
    if not usable:
        return None
    return max(usable)[1]


def _fast_lane_grade(
    probs: Sequence[float], config: PolicyConfig, threshold: Decimal | None
) -> tuple[int, Decimal, bool]:
    """(grade, confidence, confident) under the policy's fast-lane rule."""
    most_likely = max(range(NUM_GRADES), key=lambda g: (probs[g], -g))
    if config.fast_lane_rule == "most_likely":
        confidence = _confidence(probs[most_likely])
        return most_likely, confidence, confidence >= config.confidence_threshold
    exceed = _exceedance(probs)
    if threshold is not None:
        for g in sorted(config.fast_lane_grades, reverse=True):
            if _confidence(exceed[g]) >= threshold:
                return g, _confidence(exceed[g]), True
    return most_likely, _confidence(probs[most_likely]), False


def decide(
    claim_probs: Sequence[float],
    declared_value: Decimal,
    currency: str,
    config: PolicyConfig,
    *,
    threshold: Decimal | None = None,
    unusable: Sequence[UnusablePhoto] = (),
) -> Decision:
    """Offer or Review for a claim, given its grade probabilities (see combine_photos).

    The grade depends on `config.fast_lane_rule`:
    - `most_likely`: the most likely grade (ties go to the lower grade: never assume worse damage than
      the model does); the confidence is its probability, and it must reach `confidence_threshold`.
    - `exceedance`: the highest fast-lane grade g with P(grade >= g) >= `threshold`, the model's
      certified threshold for the policy's `max_overpay_rate` (see `certified_threshold`); the
      confidence is that P(grade >= g). Offering structural when severe is uncertain pays the part
      of the damage the model is sure of. With no such grade (or no certified threshold) the claim is
      reviewed as LOW_CONFIDENCE, or GRADE_NOT_FAST_LANE when the most likely grade is not a
      fast-lane grade, and shows the most likely grade.
    The fast lane (an Offer) needs all of: a confident fast-lane grade, every photo usable (the photo
    gate's `unusable` list is empty), a currency with a fast-lane ceiling, a declared value strictly
    below that ceiling, and a positive amount. Anything else is a Review listing every condition that
    failed, in ReasonCode order, so an adjuster sees the whole picture and not just the first check.
    There is no path to a denial.

    Raises ValueError (MoneyError for money) on invalid input: that is a caller's bug, not a claim
    to send to review.
    """
    probs = _check_probs(claim_probs, "claim")
    declared_value, currency = _check_declared(declared_value, currency)
    grade, confidence, confident = _fast_lane_grade(probs, config, threshold)
    amount = payout_amount(grade, declared_value, currency, config)
    ceiling = config.fast_lane_ceiling.get(currency)

    reasons: list[ReasonCode] = []
    if not confident and (config.fast_lane_rule == "most_likely" or grade in config.fast_lane_grades):
        reasons.append(ReasonCode.LOW_CONFIDENCE)
    if unusable:
        reasons.append(ReasonCode.PHOTO_UNUSABLE)
    if grade not in config.fast_lane_grades:
        reasons.append(ReasonCode.GRADE_NOT_FAST_LANE)
    if ceiling is not None and declared_value >= ceiling:
        reasons.append(ReasonCode.VALUE_ABOVE_FAST_LANE_CEILING)
    if ceiling is None:
        reasons.append(ReasonCode.CURRENCY_NOT_FAST_LANE)
    if grade in config.fast_lane_grades and amount <= 0:
        reasons.append(ReasonCode.PAYOUT_ROUNDS_TO_ZERO)

    if reasons:
        return Review(grade, confidence, tuple(reasons), config.version, tuple(unusable))
    options = tuple(_option(OptionKind(kind), amount, currency, config) for kind in config.options)
    return Offer(grade, confidence, amount, currency, options, config.version)


def offer_expires_at(now: datetime, config: PolicyConfig) -> datetime:
    """When an offer made at `now` expires. `now` is passed in (no clock reads here) and must be
    timezone-aware, so an expiry never depends on the server's local time zone."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now + timedelta(hours=config.offer_valid_hours)


# --------------------------------------------------------------------------------------------------
# Explanations


def _percent(fraction: Decimal) -> str:
    """0.10 -> "10%", 0.125 -> "12.5%"."""
    with money_context():
        return f"{(fraction * 100).normalize():f}%"


_REASON_TEXT: Mapping[ReasonCode, str] = MappingProxyType(
    {
        ReasonCode.LOW_CONFIDENCE: "our assessment of your photos was not certain enough",
        ReasonCode.PHOTO_UNUSABLE: "a photo cannot be assessed",
        ReasonCode.GRADE_NOT_FAST_LANE: "the damage in your photos needs a person's judgement",
        ReasonCode.VALUE_ABOVE_FAST_LANE_CEILING: "the declared value is above our instant-payout limit",
        ReasonCode.CURRENCY_NOT_FAST_LANE: "instant payouts are not available in this currency",
        ReasonCode.PAYOUT_ROUNDS_TO_ZERO: "the declared value is too small for an instant payout",
        ReasonCode.SHIPMENT_UNVERIFIED: "we could not yet match your tracking number to a shipment",
        ReasonCode.VALUE_ABOVE_INSURED: "the value you gave is not the value insured when the parcel was shipped",
        ReasonCode.NOT_DELIVERED: "our records do not show the parcel as delivered yet",
        ReasonCode.OUTSIDE_CLAIM_WINDOW: "the claim was made after the claim period for this parcel",
        ReasonCode.DUPLICATE_PARCEL: "there is another claim for this parcel",
        ReasonCode.PARCEL_ALREADY_PAID: "a claim for this parcel has already been paid",
        ReasonCode.PHOTO_REUSED: "a photo matches one sent with another claim",
        ReasonCode.PHOTO_PREDATES_DELIVERY: "a photo seems to have been taken before the parcel was delivered",
        ReasonCode.SCREENSHOT: "a photo looks like a screenshot rather than a photo of the parcel",
        ReasonCode.REPEAT_CLAIMANT: "several claims were filed recently, so a person checks each one",
        ReasonCode.CUSTOMER_DECLINED: "you declined our offer",
        ReasonCode.OFFER_EXPIRED: "our offer expired",
        ReasonCode.PHOTOS_ADDED: "you added photos",
        ReasonCode.SHIPMENT_ARRIVED: "the shipment record for your parcel arrived",
        ReasonCode.MODEL_UNAVAILABLE: "our automatic assessment is not available right now",
    }
)


def _join(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def describe(decision: Decision) -> str:
    """A short customer-facing explanation of a decision (no internal codes, no raw probabilities)."""
    if isinstance(decision, Offer):
        with money_context():
            percent = (decision.confidence * 100).quantize(Decimal(1), rounding=ROUND_DOWN)
        amount = format_money(decision.amount, decision.currency)
        choices = []
        for option in decision.options:
            if option.kind == OptionKind.CASH:
                choices.append(f"{amount} in cash")
            elif option.kind == OptionKind.RESHIPMENT:
                choices.append("a replacement of the same item")
            else:
                assert option.amount is not None
                choices.append(f"{format_money(option.amount, decision.currency)} in store credit")
        how = choices[0] if len(choices) == 1 else ", ".join(choices[:-1]) + " or " + choices[-1]
        return (
            f"Your parcel shows {GRADE_NAMES[decision.grade]} damage (confidence {percent}%). "
            f"We offer {amount}: you can take {how}."
        )
    if isinstance(decision, Review):
        because = _join([_REASON_TEXT[r] for r in decision.reasons])
        retake = "".join(f" {photo.message}" for photo in decision.retake)
        return f"An adjuster will review your claim because {because}.{retake}"
    raise TypeError(f"not a decision: {decision!r}")
