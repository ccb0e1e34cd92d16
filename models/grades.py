"""The damage grade scale: one definition, used by training, serving, policy and the review console.

The model is ordinal: it predicts P(grade >= k) for k = 1..3. Binary "damaged / intact" photos
supervise only the k = 1 threshold; graded photos supervise all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Grade(IntEnum):
    NONE = 0
    COSMETIC = 1
    STRUCTURAL = 2
    SEVERE = 3


@dataclass(frozen=True)
class GradeInfo:
    grade: Grade
    name: str
    definition: str


GRADES: tuple[GradeInfo, ...] = (
    GradeInfo(Grade.NONE, "none", "No visible damage (normal wear, tape, labels)."),
    GradeInfo(
        Grade.COSMETIC,
        "cosmetic",
        "Scuffs, shallow dents, small scrapes; box structure intact; contents very unlikely harmed.",
    ),
    GradeInfo(
        Grade.STRUCTURAL,
        "structural",
        "Crushed corner or edge, caved side, a tear or hole through the wall, water stain; "
        "contents possibly harmed.",
    ),
    GradeInfo(
        Grade.SEVERE,
        "severe",
        "Box burst open, crushed flat, large tears exposing contents, soaked; contents likely harmed.",
    ),
)

NUM_GRADES = len(GRADES)
NUM_THRESHOLDS = NUM_GRADES - 1  # P(grade >= 1), P(grade >= 2), P(grade >= 3)
GRADE_NAMES: tuple[str, ...] = tuple(g.name for g in GRADES)


def grade_probs_from_exceedance(p_ge: np.ndarray) -> np.ndarray:
    """Turn cumulative P(grade >= k), shape (..., 3), into per-grade probabilities, shape (..., 4).

    The head guarantees p_ge is non-increasing in k; the clip only absorbs float rounding so the
    result is a proper distribution.
    """
    p_ge = np.asarray(p_ge, dtype=np.float64)
    ones = np.ones(p_ge.shape[:-1] + (1,))
    zeros = np.zeros(p_ge.shape[:-1] + (1,))
    upper = np.concatenate([ones, p_ge], axis=-1)
    lower = np.concatenate([p_ge, zeros], axis=-1)
    probs = np.clip(upper - lower, 0.0, 1.0)
    return probs / probs.sum(axis=-1, keepdims=True)


def most_likely_grade(grade_probs: np.ndarray) -> np.ndarray:
    """The grade with the highest probability (what the policy and the CLI report)."""
    return np.asarray(grade_probs).argmax(axis=-1)


def p_damaged(grade_probs: np.ndarray) -> np.ndarray:
    """P(grade >= 1): the probability that the parcel shows any damage."""
    return 1.0 - np.asarray(grade_probs)[..., 0]
