"""The fast lane's error bound and its money: choosing the offer threshold from data, and pricing it.

Two questions a carrier asks before letting a model pay on its own:

1. *How often does an instant offer pay for more damage than there is?* `ltt_threshold` picks the
   offer threshold with Learn-then-Test (Angelopoulos, Bates, Candès, Jordan, Lei 2021): for each
   candidate threshold, from the strictest to the loosest, it tests "the share of offers whose offered
   grade is above the true grade exceeds alpha" with an exact binomial p-value on a calibration set,
   and keeps the loosest threshold reached before the first test that fails to reject (fixed-sequence
   testing, so no multiplicity correction is needed). With probability at least 1 - delta over the
   calibration set, the chosen threshold's overpay share is at most alpha. Why a binomial test and
   not a mean: conditional on which calibration photos receive an offer, their errors are independent
   Bernoulli draws with the threshold's overpay share as probability, so the test is exact at any size.
2. *What does it cost?* `money_report` files every photo as a claim at a declared value and compares
   what the fast lane offers with what the policy pays at the true grade.

The offer rule (`offered_grades`) is the one `claims.policy.decide` applies with
`fast_lane_rule = "exceedance"`: offer the highest fast-lane grade g with P(grade >= g) >= threshold.
Overpaying needs the true grade below the offered one, and P(grade >= g) is exactly the probability
that it is not, so this is the score the bound is about; offering structural when severe is unsure,
instead of nothing, settles more claims without paying for damage that is not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal

import numpy as np

NO_OFFER = -1


def offered_grades(
    p_ge: np.ndarray, threshold: float, fast_lane_grades: Sequence[int] = (2, 3)
) -> np.ndarray:
    """Per photo (or claim): the grade the fast lane offers, or NO_OFFER.

    p_ge: (N, 3) P(grade >= k) for k = 1..3. The highest grade g in `fast_lane_grades` whose
    P(grade >= g) reaches `threshold`.
    """
    p_ge = np.asarray(p_ge, dtype=np.float64)
    out = np.full(len(p_ge), NO_OFFER, dtype=np.int64)
    for g in sorted(fast_lane_grades):
        out = np.where(p_ge[:, g - 1] >= threshold, g, out)
    return out


def binomial_p_value(errors: int, n: int, alpha: float) -> float:
    """P(Binomial(n, alpha) <= errors): small when the error share is credibly below alpha."""
    from scipy.stats import binom  # training-time only: serving never chooses thresholds

    if n == 0:
        return 1.0
    return float(binom.cdf(errors, n, alpha))


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float | None  # None: no threshold is certified (the fast lane stays closed)
    alpha: float
    delta: float
    calibration_size: int
    offers: int  # calibration photos offered at the threshold
    errors: int  # of which overpaid or not a usable parcel photo
    upper_bound: float  # one-sided (1 - delta) Clopper-Pearson bound on the overpay share

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def clopper_pearson_upper(errors: int, n: int, delta: float) -> float:
    if n == 0:
        return 1.0
    if errors >= n:
        return 1.0
    from scipy.stats import beta

    return float(beta.ppf(1 - delta, errors + 1, n - errors))


def ltt_threshold(
    p_ge: np.ndarray,
    true_grade: np.ndarray,
    eligible: np.ndarray,
    *,
    alpha: float,
    delta: float = 0.1,
    grid: Sequence[float] | None = None,
    fast_lane_grades: Sequence[int] = (2, 3),
) -> ThresholdChoice:
    """The loosest offer threshold whose overpay share is certified <= alpha with confidence 1 - delta.

    An offer counts as an error when its grade is above the true grade, or when the photo was not
    `eligible` (not a usable parcel photo: it should never have been offered). Photos the photo gate
    already refuses should be left out of `p_ge` by the caller.
    """
    p_ge = np.asarray(p_ge, dtype=np.float64)
    true_grade = np.asarray(true_grade)
    eligible = np.asarray(eligible, dtype=bool)
    grid = sorted(grid if grid is not None else np.round(np.arange(0.995, 0.499, -0.005), 3), reverse=True)
    best: ThresholdChoice | None = None
    # The fewest offers that could ever certify alpha (no error at all): thresholds offering fewer are
    # skipped rather than tested. Which thresholds are skipped depends on the scores only, never on
    # the labels, so the sequence is still fixed before any label is looked at; without the skip, the
    # strictest thresholds (a handful of offers) would end the sequence before it reached any power.
    n_min = 1
    while binomial_p_value(0, n_min, alpha) > delta:
        n_min += 1
    for lam in grid:
        offered = offered_grades(p_ge, lam, fast_lane_grades)
        made = offered != NO_OFFER
        wrong = made & ((offered > true_grade) | ~eligible)
        n, k = int(made.sum()), int(wrong.sum())
        if n < n_min:
            continue
        if binomial_p_value(k, n, alpha) > delta:
            break
        best = ThresholdChoice(float(lam), alpha, delta, len(p_ge), n, k, clopper_pearson_upper(k, n, delta))
    if best is None:
        return ThresholdChoice(None, alpha, delta, len(p_ge), 0, 0, 1.0)
    return best


@dataclass(frozen=True)
class MoneyReport:
    """What the fast lane pays against what the policy pays at the true grade, in one currency."""

    claims: int
    offers: int
    paid_fast_lane: float  # sum of instant offers
    owed_at_true_grade: float  # what those same claims are owed at their true grades
    overpayment: float  # sum over offers of max(offer - owed, 0)
    underpayment: float  # sum over offers of max(owed - offer, 0)
    overpaid_offers: int
    intact_offered: int
    intact_claims: int
    damaged_settled_instantly: int  # true grade in the fast-lane grades, offered
    damaged_claims: int

    @property
    def overpay_share(self) -> float:
        return self.overpaid_offers / self.offers if self.offers else 0.0

    @property
    def overpayment_ratio(self) -> float:
        """Overpayment as a share of what the offers should have paid."""
        return self.overpayment / self.owed_at_true_grade if self.owed_at_true_grade else 0.0

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["overpay_share"] = self.overpay_share
        out["overpayment_ratio"] = self.overpayment_ratio
        out["damaged_settled_share"] = (
            self.damaged_settled_instantly / self.damaged_claims if self.damaged_claims else 0.0
        )
        return out


def money_report(
    offered: np.ndarray,
    true_grade: np.ndarray,
    declared_values: np.ndarray,
    grade_fractions: Sequence[Decimal | float],
    fast_lane_grades: Sequence[int] = (2, 3),
) -> MoneyReport:
    """Every row is a one-photo claim at its declared value (below the fast-lane ceiling)."""
    offered = np.asarray(offered)
    true_grade = np.asarray(true_grade)
    values = np.asarray(declared_values, dtype=np.float64)
    fractions = np.asarray([float(f) for f in grade_fractions])
    made = offered != NO_OFFER
    offer_amount = np.where(made, fractions[np.clip(offered, 0, None)] * values, 0.0)
    owed = fractions[true_grade] * values
    damaged = np.isin(true_grade, list(fast_lane_grades))
    return MoneyReport(
        claims=len(offered),
        offers=int(made.sum()),
        paid_fast_lane=float(offer_amount[made].sum()),
        owed_at_true_grade=float(owed[made].sum()),
        overpayment=float(np.clip(offer_amount - owed, 0, None)[made].sum()),
        underpayment=float(np.clip(owed - offer_amount, 0, None)[made].sum()),
        overpaid_offers=int((made & (offered > true_grade)).sum()),
        intact_offered=int((made & (true_grade == 0)).sum()),
        intact_claims=int((true_grade == 0).sum()),
        damaged_settled_instantly=int((made & damaged).sum()),
        damaged_claims=int(damaged.sum()),
    )


def declared_values(n: int, seed: int = 0, *, median: float = 300.0, ceiling: float = 2000.0) -> np.ndarray:
    """A declared-value distribution for the money figures: log-normal around a 300 CNY median,
    below the fast-lane ceiling (claims at or above it never take the fast lane), whole yuan."""
    rng = np.random.default_rng(seed)
    values = np.exp(rng.normal(np.log(median), 0.8, size=n))
    return np.clip(np.round(values), 1, ceiling - 1)
