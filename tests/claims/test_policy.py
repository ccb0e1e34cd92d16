"""The payout policy: configuration, combining photos, payout amounts and fast-lane decisions."""

from __future__ import annotations

import ast
import dataclasses
import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import claims
from claims.money import CURRENCIES, MAX_AMOUNT, MoneyError, parse_amount, quantize
from claims.policy import (
    DEFAULT_POLICY_FILE,
    GRADE_NAMES,
    NUM_GRADES,
    Decision,
    Offer,
    OfferOption,
    OptionKind,
    PolicyConfig,
    PolicyError,
    ReasonCode,
    Review,
    combine_photos,
    decide,
    describe,
    offer_expires_at,
    parse_policy,
    payout_amount,
)

DEFAULTS = PolicyConfig(version="2026-11-v1")
D = Decimal


def probs_for(grade: int, confidence: float) -> list[float]:
    """A distribution whose most likely grade is `grade` with probability `confidence`."""
    rest = (1.0 - confidence) / (NUM_GRADES - 1)
    return [confidence if g == grade else rest for g in range(NUM_GRADES)]


# --------------------------------------------------------------------------------------------------
# Strategies: money from strings, probability vectors by normalising floats, configs within bounds

CURRENCY_SAMPLE = ["CNY", "JPY", "BHD", "USD", "KRW", "EUR"]


@st.composite
def amounts(draw: st.DrawFn, currency: str, max_units: int = 10**13) -> Decimal:
    """A valid declared value of `currency`, built as text and parsed (as the API does)."""
    digits = CURRENCIES[currency]
    units = draw(st.integers(min_value=1, max_value=min(max_units, int(MAX_AMOUNT.scaleb(digits)))))
    whole, frac = divmod(units, 10**digits)
    return parse_amount(f"{whole}.{frac:0{digits}d}" if digits else str(whole), currency)


@st.composite
def prob_vectors(draw: st.DrawFn, peak_at: st.SearchStrategy[int] | None = None) -> list[float]:
    """A probability vector: random non-negative weights, often with one grade (drawn from `peak_at`
    when given) boosted so that confident predictions are common, normalised to sum to 1."""
    weights = draw(
        st.lists(st.one_of(st.just(0.0), st.floats(1e-6, 1.0)), min_size=NUM_GRADES, max_size=NUM_GRADES)
    )
    boost = draw(st.one_of(st.just(0.0), st.floats(0.0, 1000.0)))
    weights[draw(peak_at if peak_at is not None else st.integers(0, NUM_GRADES - 1))] += boost
    total = math.fsum(weights)
    if total == 0:
        weights, total = [1.0] * NUM_GRADES, float(NUM_GRADES)
    return [w / total for w in weights]


@st.composite
def per_currency_limits(draw: st.DrawFn) -> dict[str, Decimal]:
    codes = draw(st.lists(st.sampled_from(CURRENCY_SAMPLE), unique=True, max_size=len(CURRENCY_SAMPLE)))
    return {c: draw(amounts(c, max_units=10**9)) for c in codes}


@st.composite
def configs(draw: st.DrawFn) -> PolicyConfig:
    fractions = sorted(draw(st.lists(st.integers(0, 1000), min_size=NUM_GRADES, max_size=NUM_GRADES)))
    grade_fractions = tuple(D(n).scaleb(-3) for n in fractions)
    paying = [g for g in range(NUM_GRADES) if fractions[g] > 0]
    fast = draw(st.sets(st.sampled_from(paying))) if paying else set()
    options = draw(st.permutations(list(OptionKind)))[: draw(st.integers(1, len(OptionKind)))]
    return PolicyConfig(
        version=draw(st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)),
        grade_fractions=grade_fractions,  # type: ignore[arg-type]
        confidence_threshold=D(draw(st.integers(1, 1000))).scaleb(-3),
        fast_lane_grades=frozenset(fast),
        fast_lane_ceiling=draw(per_currency_limits()),
        coverage_limit=draw(per_currency_limits()),
        store_credit_bonus=D(draw(st.integers(0, 100))).scaleb(-2),
        options=tuple(options),
        offer_valid_hours=draw(st.integers(1, 720)),
    )


@st.composite
def claims_(draw: st.DrawFn) -> tuple[list[float], Decimal, str, PolicyConfig]:
    """A claim and a config. Half the time it is steered towards the fast lane (a currency with a
    ceiling, a value below it, a peak at a fast-lane grade), so that Offers are common too."""
    config = draw(st.one_of(st.just(DEFAULTS), configs()))
    steer = draw(st.booleans())
    ceilings = sorted(config.fast_lane_ceiling)
    if steer and ceilings:
        currency = draw(st.sampled_from(ceilings))
        ceiling_units = int(config.fast_lane_ceiling[currency].scaleb(CURRENCIES[currency]))
        declared = draw(amounts(currency, max_units=ceiling_units))
    else:
        known = sorted(set(ceilings) | set(config.coverage_limit))
        currency = draw(st.sampled_from(known + CURRENCY_SAMPLE))
        declared = draw(amounts(currency))
    fast = sorted(config.fast_lane_grades)
    probs = draw(prob_vectors(st.sampled_from(fast) if steer and fast else None))
    return probs, declared, currency, config


# --------------------------------------------------------------------------------------------------
# Configuration and the policy file


def test_defaults() -> None:
    c = DEFAULTS
    assert c.grade_fractions == (D("0"), D("0"), D("0.5"), D("1.0"))
    assert c.confidence_threshold == D("0.9")
    assert c.fast_lane_grades == {2, 3}
    assert dict(c.fast_lane_ceiling) == {"CNY": D("2000")}
    assert dict(c.coverage_limit) == {"CNY": D("20000")}
    assert c.store_credit_bonus == D("0.10")
    assert c.options == ("cash", "reshipment", "store_credit")
    assert c.offer_valid_hours == 72


def test_shipped_policy_file_equals_the_defaults() -> None:
    """2026-11-v1 is the code's defaults; 2026-12-v2 adds only the v2 fast-lane rule
    (tests/claims/test_policy_v2.py), and the shipped default 2026-12-v3 only the integrity knobs."""
    assert DEFAULT_POLICY_FILE.name == "2026-12-v3.toml"
    v3 = parse_policy(DEFAULT_POLICY_FILE.read_text(encoding="utf-8"))
    v2 = parse_policy((DEFAULT_POLICY_FILE.parent / "2026-12-v2.toml").read_text(encoding="utf-8"))
    assert (v3.claim_window_days, v3.repeat_claimant_max_claims, v3.repeat_claimant_days) == (14, 3, 30)
    assert (
        dataclasses.replace(v3, version="2026-12-v2", claim_window_days=None, repeat_claimant_max_claims=None)
        == v2
    )
    assert dataclasses.replace(v2, version="2026-11-v1", fast_lane_rule="most_likely") == DEFAULTS
    config = parse_policy((DEFAULT_POLICY_FILE.parent / "2026-11-v1.toml").read_text(encoding="utf-8"))
    assert config == DEFAULTS
    assert hash(config) == hash(DEFAULTS)
    assert config.version == "2026-11-v1"
    for value in (*config.grade_fractions, config.confidence_threshold, config.store_credit_bonus):
        assert type(value) is Decimal
    assert all(
        type(v) is Decimal for v in (*config.fast_lane_ceiling.values(), *config.coverage_limit.values())
    )


SHIPPED = (DEFAULT_POLICY_FILE.parent / "2026-11-v1.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('confidence_threshold = "0.9"', "confidence_threshold = 0.9", "TOML float"),
        ('store_credit_bonus = "0.10"', "store_credit_bonus = 0.1", "TOML float"),
        ('grade_fractions = ["0", "0", "0.5", "1.0"]', "grade_fractions = [0, 0, 0.5, 1]", "TOML float"),
        ('CNY = "2000"', "CNY = 2000.0", "TOML float"),
        ('confidence_threshold = "0.9"', 'confidence_threshold = "nine tenths"', "decimal number"),
        ('confidence_threshold = "0.9"', 'confidence_threshold = "9e-1"', "decimal number"),
        ('confidence_threshold = "0.9"', 'confidence_threshold = "NaN"', "decimal number"),
        ('confidence_threshold = "0.9"', 'confidence_threshold = "1.5"', r"in \(0, 1\]"),
        ('confidence_threshold = "0.9"', 'confidence_threshold = "0"', r"in \(0, 1\]"),
        ('confidence_threshold = "0.9"', "confidence_threshold = true", "decimal number"),
        ('confidence_threshold = "0.9"', 'confidence_threshold = "0.9"\nconfidence = "0.8"', "unknown keys"),
        ('confidence_threshold = "0.9"', "", "missing keys: confidence_threshold"),
        ('confidence_threshold = "0.9"', 'confidence_threshold = "0.9', "not valid TOML"),
        (
            'grade_fractions = ["0", "0", "0.5", "1.0"]',
            'grade_fractions = ["0", "0.5", "0.4", "1"]',
            "decrease",
        ),
        ('grade_fractions = ["0", "0", "0.5", "1.0"]', 'grade_fractions = ["0", "0.5", "1"]', "needs 4"),
        ('grade_fractions = ["0", "0", "0.5", "1.0"]', 'grade_fractions = ["0", "0", "0", "1"]', "nothing"),
        ("fast_lane_grades = [2, 3]", "fast_lane_grades = [2, 4]", "not a grade"),
        ('CNY = "2000"', 'RMB = "2000"', "ISO 4217"),
        ('CNY = "2000"', 'CNY = "2000.005"', "decimal places"),
        ('CNY = "2000"', 'CNY = "-1"', "greater than zero"),
        (
            'options = ["cash", "reshipment", "store_credit"]',
            'options = ["cash", "voucher"]',
            "unknown option",
        ),
        ('options = ["cash", "reshipment", "store_credit"]', 'options = ["cash", "cash"]', "twice"),
        ('options = ["cash", "reshipment", "store_credit"]', "options = []", "at least one"),
        ("offer_valid_hours = 72", "offer_valid_hours = 0", "offer_valid_hours"),
        ("offer_valid_hours = 72", "offer_valid_hours = 72.0", "offer_valid_hours"),
        ('version = "2026-11-v1"', 'version = ""', "version"),
    ],
)
def test_parse_policy_refuses(old: str, new: str, message: str) -> None:
    assert old in SHIPPED
    with pytest.raises(PolicyError, match=message):
        parse_policy(SHIPPED.replace(old, new, 1))


def test_policy_error_is_a_value_error() -> None:
    assert issubclass(PolicyError, ValueError)


def test_parse_policy_accepts_integers_for_decimals() -> None:
    config = parse_policy(SHIPPED.replace('CNY = "2000"', "CNY = 2000").replace('"1.0"]', "1]"))
    assert config == DEFAULTS


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"confidence_threshold": 0.9}, "Decimal"),
        ({"confidence_threshold": D("NaN")}, "finite"),
        ({"confidence_threshold": D("0")}, r"\(0, 1\]"),
        ({"grade_fractions": (D(0), D(0), D("0.5"), D("1.1"))}, "between 0 and 1"),
        ({"grade_fractions": (D(0), D(0), D("0.5"), D("-0.1"))}, "between 0 and 1"),
        ({"grade_fractions": (D(0), D(0), D("0.5"), 1.0)}, "Decimal"),
        ({"fast_lane_grades": frozenset({True})}, "not a grade"),
        ({"fast_lane_grades": frozenset({1})}, "nothing"),
        ({"fast_lane_ceiling": {"CNY": 2000.0}}, "Decimal"),
        ({"fast_lane_ceiling": {"cny": D(2000)}}, "ISO 4217"),
        ({"coverage_limit": {"JPY": D("0.5")}}, "decimal places"),
        ({"store_credit_bonus": D("-0.1")}, "between 0 and 1"),
        ({"options": ("cash", "cash")}, "twice"),
        ({"options": "cash"}, "list"),
        ({"offer_valid_hours": True}, "offer_valid_hours"),
        ({"offer_valid_hours": 10_000}, "offer_valid_hours"),
    ],
)
def test_policy_config_validation(changes: dict, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        dataclasses.replace(DEFAULTS, **changes)


def test_policy_config_cannot_change_after_construction() -> None:
    ceiling = {"CNY": D(2000)}
    config = PolicyConfig(version="t", fast_lane_ceiling=ceiling)
    ceiling["USD"] = D(300)
    assert "USD" not in config.fast_lane_ceiling
    with pytest.raises(TypeError):
        config.fast_lane_ceiling["USD"] = D(300)  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.confidence_threshold = D("0.5")  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------
# combine_photos


def exceedance(p: tuple[float, ...] | list[float]) -> list[float]:
    return [math.fsum(p[k:]) for k in range(NUM_GRADES)]


@given(st.lists(prob_vectors(), min_size=1, max_size=6))
def test_combined_photos_are_a_distribution_at_least_as_damaged_as_each_photo(
    photos: list[list[float]],
) -> None:
    combined = combine_photos(photos)
    assert len(combined) == NUM_GRADES
    assert all(isinstance(p, float) and 0.0 <= p <= 1.0 for p in combined)
    assert math.fsum(combined) == pytest.approx(1.0, abs=1e-9)
    for photo in photos:
        for k, (c, p) in enumerate(zip(exceedance(combined), exceedance(photo), strict=True)):
            assert c >= p - 1e-9, (k, combined, photo)
    # ... and no more damaged than the most damaged photo, grade by grade.
    for k in range(NUM_GRADES):
        assert exceedance(combined)[k] == pytest.approx(max(exceedance(p)[k] for p in photos), abs=1e-9)


@given(prob_vectors())
def test_a_single_photo_combines_to_itself(photo: list[float]) -> None:
    assert combine_photos([photo]) == pytest.approx(photo, abs=1e-12)


@given(st.lists(prob_vectors(), min_size=1, max_size=5), st.randoms())
def test_combining_ignores_photo_order_and_repeated_views(photos: list[list[float]], rnd) -> None:
    combined = combine_photos(photos)
    shuffled = photos[:]
    rnd.shuffle(shuffled)
    assert combine_photos(shuffled) == pytest.approx(combined, abs=1e-12)
    # One dent photographed twice is still one dent (unlike noisy-OR).
    assert combine_photos(photos + photos[:1]) == pytest.approx(combined, abs=1e-12)


def test_combine_photos_example() -> None:
    # Two photos: one mostly intact, one showing structural damage from its angle.
    combined = combine_photos([[0.85, 0.1, 0.04, 0.01], [0.05, 0.1, 0.8, 0.05]])
    assert combined == pytest.approx((0.05, 0.1, 0.8, 0.05))
    # Averaging would have made "none" most likely (0.45), hiding the damage.


@pytest.mark.parametrize(
    "photos",
    [
        [],
        [[0.5, 0.5, 0.0]],
        [[0.25] * 5],
        [[0.5, 0.5, 0.5, 0.5]],
        [[1.1, -0.1, 0.0, 0.0]],
        [[math.nan, 0.5, 0.25, 0.25]],
        [[math.inf, 0.0, 0.0, 0.0]],
        [[0.25, 0.25, 0.25, "0.25"]],
        [[0.25, 0.25, 0.25, 0.25], [0.9, 0.0, 0.0, 0.0]],
        "abcd",
    ],
)
def test_combine_photos_refuses_bad_input(photos) -> None:
    with pytest.raises(ValueError):
        combine_photos(photos)


def test_combine_photos_tolerates_rounded_model_output() -> None:
    photo = [round(p, 6) for p in (1 / 3, 1 / 3, 1 / 6, 1 / 6)]  # sums to 0.999999...
    assert math.fsum(combine_photos([photo])) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------
# payout_amount


@given(st.data())
def test_payout_never_exceeds_declared_value_or_coverage_and_never_decreases_with_grade(data) -> None:
    config = data.draw(st.one_of(st.just(DEFAULTS), configs()))
    currency = data.draw(st.sampled_from(CURRENCY_SAMPLE))
    declared = data.draw(amounts(currency))
    previous = D(-1)
    for grade in range(NUM_GRADES):
        amount = payout_amount(grade, declared, currency, config)
        assert type(amount) is Decimal
        assert amount == quantize(amount, currency)  # whole minor units
        assert D(0) <= amount <= declared
        if currency in config.coverage_limit:
            assert amount <= config.coverage_limit[currency]
        assert amount >= previous
        previous = amount
    assert payout_amount(NUM_GRADES - 1, declared, currency, config) >= payout_amount(
        0, declared, currency, config
    )


def test_payout_examples() -> None:
    assert payout_amount(2, D("300.00"), "CNY", DEFAULTS) == D("150.00")
    assert payout_amount(3, D("300.00"), "CNY", DEFAULTS) == D("300.00")
    assert payout_amount(0, D("300.00"), "CNY", DEFAULTS) == D("0.00")
    assert payout_amount(1, D("300.00"), "CNY", DEFAULTS) == D("0.00")
    # Coverage limit: 20000 CNY at most.
    assert payout_amount(3, D("50000.00"), "CNY", DEFAULTS) == D("20000.00")
    assert payout_amount(2, D("50000.00"), "CNY", DEFAULTS) == D("10000.00")
    # No limit configured for USD: the declared value is covered.
    assert payout_amount(3, D("50000.00"), "USD", DEFAULTS) == D("50000.00")
    # Rounding half up to the minor unit.
    assert payout_amount(2, D("0.01"), "CNY", DEFAULTS) == D("0.01")
    assert payout_amount(2, D("199.99"), "CNY", DEFAULTS) == D("100.00")
    assert payout_amount(2, D("101"), "JPY", DEFAULTS) == D("51")
    assert str(payout_amount(2, D("1.001"), "BHD", DEFAULTS)) == "0.501"


@pytest.mark.parametrize(
    ("grade", "declared", "currency", "error"),
    [
        (4, D("10"), "CNY", ValueError),
        (-1, D("10"), "CNY", ValueError),
        (True, D("10"), "CNY", ValueError),
        (2, D("0"), "CNY", MoneyError),
        (2, D("-10"), "CNY", MoneyError),
        (2, D("NaN"), "CNY", MoneyError),
        (2, D("1.005"), "CNY", MoneyError),
        (2, D("10.5"), "JPY", MoneyError),
        (2, 10.5, "CNY", MoneyError),
        (2, D("10"), "XYZ", MoneyError),
    ],
)
def test_payout_refuses_bad_input(grade, declared, currency, error) -> None:
    with pytest.raises(error):
        payout_amount(grade, declared, currency, DEFAULTS)


# --------------------------------------------------------------------------------------------------
# decide


def expected_reasons(probs, declared, currency, config) -> list[ReasonCode]:
    """The fast-lane conditions restated from the specification, independently of decide()."""
    grade = probs.index(max(probs))
    confidence = D(str(round(probs[grade], 6)))
    ceiling = config.fast_lane_ceiling.get(currency)
    reasons = []
    if confidence < config.confidence_threshold:
        reasons.append(ReasonCode.LOW_CONFIDENCE)
    if grade not in config.fast_lane_grades:
        reasons.append(ReasonCode.GRADE_NOT_FAST_LANE)
    if ceiling is not None and declared >= ceiling:
        reasons.append(ReasonCode.VALUE_ABOVE_FAST_LANE_CEILING)
    if ceiling is None:
        reasons.append(ReasonCode.CURRENCY_NOT_FAST_LANE)
    if grade in config.fast_lane_grades and payout_amount(grade, declared, currency, config) == 0:
        reasons.append(ReasonCode.PAYOUT_ROUNDS_TO_ZERO)
    return reasons


@given(claims_())
def test_decide_offers_only_on_the_fast_lane_and_otherwise_reviews_with_all_reasons(claim) -> None:
    probs, declared, currency, config = claim
    decision = decide(probs, declared, currency, config)
    assert isinstance(decision, Offer | Review)  # no third outcome: nothing denies
    assert type(decision) in (Offer, Review)
    assert decision.policy_version == config.version
    grade = probs.index(max(probs))
    assert decision.grade == grade
    assert decision.confidence == D(str(round(probs[grade], 6)))
    reasons = expected_reasons(probs, declared, currency, config)

    if isinstance(decision, Offer):
        assert reasons == []
        assert decision.confidence >= config.confidence_threshold
        assert decision.grade in config.fast_lane_grades
        assert currency in config.fast_lane_ceiling
        assert declared < config.fast_lane_ceiling[currency]
        assert decision.currency == currency
        assert decision.amount == payout_amount(grade, declared, currency, config)
        assert D(0) < decision.amount <= declared
        assert tuple(o.kind for o in decision.options) == config.options
        for option in decision.options:
            if option.kind == OptionKind.CASH:
                assert option.amount == decision.amount
            elif option.kind == OptionKind.RESHIPMENT:
                assert option.amount is None
            else:
                bonus = decision.amount * (1 + config.store_credit_bonus)
                assert option.amount == bonus.quantize(D(1).scaleb(-CURRENCIES[currency]), ROUND_HALF_UP)
                assert option.amount >= decision.amount
            assert option.description
    else:
        assert len(decision.reasons) >= 1
        assert list(decision.reasons) == reasons  # all of them, in ReasonCode order
        order = list(ReasonCode)
        assert sorted(decision.reasons, key=order.index) == list(decision.reasons)
        assert len(set(decision.reasons)) == len(decision.reasons)
    assert describe(decision)


def test_example_grade_2_confident_small_value_gets_an_offer() -> None:
    decision = decide(probs_for(2, 0.95), D("300"), "CNY", DEFAULTS)
    assert decision == Offer(
        grade=2,
        confidence=D("0.95"),
        amount=D("150.00"),
        currency="CNY",
        options=(
            OfferOption("cash", D("150.00"), "Cash payout of 150.00 CNY"),
            OfferOption("reshipment", None, "We send a replacement of the same item"),
            OfferOption("store_credit", D("165.00"), "Store credit of 165.00 CNY, worth 10% more"),
        ),
        policy_version="2026-11-v1",
    )
    assert str(decision.confidence) == "0.95"
    assert str(decision.amount) == "150.00"
    text = describe(decision)
    assert text.startswith("Your parcel shows structural damage (confidence 95%). We offer 150.00 CNY")
    assert "165.00 CNY in store credit" in text and "replacement" in text


@pytest.mark.parametrize(
    ("probs", "declared", "currency", "reasons"),
    [
        (probs_for(3, 0.95), "2500", "CNY", [ReasonCode.VALUE_ABOVE_FAST_LANE_CEILING]),
        (probs_for(3, 0.95), "2000", "CNY", [ReasonCode.VALUE_ABOVE_FAST_LANE_CEILING]),  # strictly below
        (probs_for(1, 0.99), "300", "CNY", [ReasonCode.GRADE_NOT_FAST_LANE]),
        (probs_for(0, 0.99), "300", "CNY", [ReasonCode.GRADE_NOT_FAST_LANE]),
        (probs_for(2, 0.6), "300", "CNY", [ReasonCode.LOW_CONFIDENCE]),
        (probs_for(2, 0.95), "300", "USD", [ReasonCode.CURRENCY_NOT_FAST_LANE]),
        (probs_for(2, 0.95), "300", "JPY", [ReasonCode.CURRENCY_NOT_FAST_LANE]),
        (
            probs_for(1, 0.5),
            "5000",
            "CNY",
            [ReasonCode.LOW_CONFIDENCE, ReasonCode.GRADE_NOT_FAST_LANE, ReasonCode.VALUE_ABOVE_FAST_LANE_CEILING],
        ),
        (probs_for(0, 0.4), "10", "EUR", [ReasonCode.LOW_CONFIDENCE, ReasonCode.GRADE_NOT_FAST_LANE,
                                          ReasonCode.CURRENCY_NOT_FAST_LANE]),
    ],
)  # fmt: skip
def test_examples_that_go_to_review(probs, declared, currency, reasons) -> None:
    decision = decide(probs, parse_amount(declared, currency), currency, DEFAULTS)
    assert isinstance(decision, Review)
    assert list(decision.reasons) == reasons
    assert decision.policy_version == "2026-11-v1"
    assert describe(decision).startswith("An adjuster will review your claim because ")


def test_confidence_exactly_at_the_threshold_takes_the_fast_lane() -> None:
    # 0.9 as a float is 0.90000000000000002220...; recorded as Decimal('0.9'), it meets 0.9 exactly.
    assert isinstance(decide(probs_for(2, 0.9), D("300.00"), "CNY", DEFAULTS), Offer)
    assert isinstance(decide(probs_for(2, 0.8999994), D("300.00"), "CNY", DEFAULTS), Review)


def test_ties_go_to_the_lower_grade() -> None:
    decision = decide([0.0, 0.0, 0.5, 0.5], D("300.00"), "CNY", DEFAULTS)
    assert decision.grade == 2


def test_a_payout_that_rounds_to_zero_goes_to_review() -> None:
    config = dataclasses.replace(DEFAULTS, grade_fractions=(D(0), D(0), D("0.3"), D(1)))
    decision = decide(probs_for(2, 0.95), D("0.01"), "CNY", config)
    assert isinstance(decision, Review)
    assert decision.reasons == (ReasonCode.PAYOUT_ROUNDS_TO_ZERO,)


def test_decide_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        decide([0.5, 0.5], D("10.00"), "CNY", DEFAULTS)
    with pytest.raises(ValueError):
        decide([0.9, 0.9, 0.0, 0.0], D("10.00"), "CNY", DEFAULTS)
    with pytest.raises(MoneyError):
        decide(probs_for(2, 0.95), D("10.001"), "CNY", DEFAULTS)
    with pytest.raises(MoneyError):
        decide(probs_for(2, 0.95), D("10.00"), "XYZ", DEFAULTS)


def test_decisions_cannot_be_empty_or_zero() -> None:
    with pytest.raises(ValueError):
        Review(2, D("0.5"), (), "v")
    with pytest.raises(ValueError):
        Review(2, None, (ReasonCode.MODEL_UNAVAILABLE,), "v")
    with pytest.raises(ValueError):
        Offer(2, D("0.95"), D("0.00"), "CNY", (OfferOption("cash", D("0.00"), "x"),), "v")
    unassessed = Review(None, None, (ReasonCode.MODEL_UNAVAILABLE,), "v")
    assert describe(unassessed) == (
        "An adjuster will review your claim because our automatic assessment is not available right now."
    )


def test_describe_review_lists_every_reason() -> None:
    review = Review(1, D("0.5"), (ReasonCode.LOW_CONFIDENCE, ReasonCode.GRADE_NOT_FAST_LANE), "v")
    assert describe(review) == (
        "An adjuster will review your claim because our assessment of your photos was not certain enough "
        "and the damage in your photos needs a person's judgement."
    )
    for reason in ReasonCode:
        assert describe(Review(2, D("0.5"), (reason,), "v"))


def test_there_is_no_deny_outcome() -> None:
    assert set(Decision.__args__) == {Offer, Review}
    assert not any("deny" in r.value or "denied" in r.value for r in ReasonCode)


def test_offer_expiry_uses_the_given_time() -> None:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert offer_expires_at(now, DEFAULTS) == now + timedelta(hours=72)
    shanghai = datetime(2026, 11, 1, 20, 0, tzinfo=timezone(timedelta(hours=8)))
    assert offer_expires_at(shanghai, DEFAULTS) == offer_expires_at(now, DEFAULTS)
    with pytest.raises(ValueError, match="timezone-aware"):
        offer_expires_at(datetime(2026, 11, 1, 12, 0), DEFAULTS)


# --------------------------------------------------------------------------------------------------
# The package stays pure


def test_grade_scale_matches_the_models_package() -> None:
    grades = pytest.importorskip("models.grades")
    assert grades.NUM_GRADES == NUM_GRADES
    assert grades.GRADE_NAMES == GRADE_NAMES


FORBIDDEN_IMPORTS = {"api", "workers", "storage", "training", "models"}
IO_IMPORTS = {"os", "io", "socket", "subprocess", "shutil", "urllib", "http", "requests", "sqlite3", "time"}


def test_claims_imports_nothing_from_other_layers_and_no_io_modules() -> None:
    package = Path(claims.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "money.py", "lifecycle.py", "policy.py"}
    for source in sources:
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN_IMPORTS | IO_IMPORTS, f"{source.name} imports {name}"
        text = source.read_text(encoding="utf-8")
        for call in ("open(", "read_text(", "read_bytes(", ".now(", ".today(", "getenv", "environ"):
            assert call not in text, f"{source.name} calls {call}"
