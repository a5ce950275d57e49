"""Split conformal prediction: nonconformity scores on a held-out calibration part, their
finite-sample quantile, and the intervals or sets it gives (Vovk et al. 2005; Lei et al. 2018;
Angelopoulos & Bates, "A Gentle Introduction to Conformal Prediction", 2021).

Given n calibration scores s_1..s_n and a level L in (0, 1), take

    q = the k-th smallest score,  k = ⌈(n + 1) · L⌉.

For a new row exchangeable with the calibration rows, P(score ≤ q) ≥ L: a marginal guarantee,
averaged over rows and over the draw of the calibration part. When k > n no finite score is
large enough: q = +inf (the interval is the whole line, the set holds every class).

- Regression: s = |y − ŷ| (absolute residual), interval [ŷ − q, ŷ + q].
- Normalized regression (Lei et al. 2018, section 5.2; an ensemble's spread as the difficulty
  estimate): s = |y − ŷ| / (σ + f), where σ is the members' standard deviation of the
  prediction on that row and f a floor; interval [ŷ − q·(σ + f), ŷ + q·(σ + f)]. The guarantee
  is the same marginal one; the intervals are wide where the members disagree and narrow where
  they agree. f = FLOOR_SHARE × the calibration part's mean σ (or 1 where every σ is 0) keeps a
  row whose members happen to agree from getting an interval of width 0, and keeps a spread that
  is partly noise from setting the width alone: with f = mean σ, half of the typical width is
  shared by every row (a smaller floor gave wider intervals on diamonds-like data, where the
  spread tracks the error only in part).
- Classification: s = 1 − p̂(true class) (LAC, the least-ambiguous set-valued classifier of
  Sadinle, Lei & Wasserman 2019, the smallest sets on average); the set is every class c with
  1 − p̂(c) ≤ q. It may be empty when no class is probable enough.
"""
from __future__ import annotations

import math

import numpy as np

REGRESSION_SCORE = "absolute_residual"
NORMALIZED_SCORE = "normalized_residual"
CLASSIFICATION_SCORE = "one_minus_true_class_probability"
SCORES = (REGRESSION_SCORE, NORMALIZED_SCORE, CLASSIFICATION_SCORE)
FLOOR_SHARE = 1.0  # the floor f of normalized scores, as a share of the calibration part's mean spread


def spread_floor(spread: np.ndarray) -> float:
    """f for the calibration part's spreads σ (rows,): FLOOR_SHARE × mean σ, or 1.0 where every
    σ is 0 (the members agree everywhere: then the scores are the absolute residuals)."""
    mean = float(np.mean(spread)) if len(spread) else 0.0
    return FLOOR_SHARE * mean if mean > 0 else 1.0


def normalized_residuals(y: np.ndarray, prediction: np.ndarray, spread: np.ndarray, floor: float) -> np.ndarray:
    """|y − ŷ| / (σ + f), all (rows,), as sorted float64 (rows,)."""
    scale = np.asarray(spread, np.float64) + floor
    return np.sort(np.abs(np.asarray(y, np.float64) - np.asarray(prediction, np.float64)) / scale)


def absolute_residuals(y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """|y − ŷ|, both (rows,), as sorted float64 (rows,)."""
    return np.sort(np.abs(np.asarray(y, np.float64) - np.asarray(prediction, np.float64)))


def true_class_scores(proba: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 − p̂(true class): `proba` (rows, classes), `y` class indices (rows,) -> sorted float64 (rows,)."""
    proba = np.asarray(proba, np.float64)
    return np.sort(1.0 - proba[np.arange(len(y)), np.asarray(y, np.int64)])


def quantile_rank(n: int, level: float) -> int:
    """k = ⌈(n + 1) · L⌉, the rank of the score that is the quantile. (n + 1) · L is computed
    in floating point: 100 · 0.55 gives 55.00000000000001, whose ceiling would be one rank too
    many, so values within 1e-9 of an integer count as that integer."""
    return max(1, math.ceil((n + 1) * level - 1e-9))


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The k-th smallest of the sorted `scores` (n,), k = quantile_rank(n, level); +inf when k > n."""
    k = quantile_rank(len(scores), level)
    return float(scores[k - 1]) if k <= len(scores) else math.inf


def intervals(prediction: np.ndarray, q) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper), each like `prediction` (rows,): ŷ ∓ q, where q is one half-width or one
    per row (rows,), q·(σ + f) for normalized scores."""
    return prediction - q, prediction + q


def prediction_sets(proba: np.ndarray, q: float) -> np.ndarray:
    """(rows, classes) bool: class c is in row i's set when 1 − p̂_i(c) ≤ q, the same
    comparison the scores were made with."""
    return (1.0 - np.asarray(proba, np.float64)) <= q


def interval_coverage(y: np.ndarray, prediction: np.ndarray, q) -> tuple[float, float]:
    """(coverage, mean width) of ŷ ∓ q over rows: the share of y inside [ŷ − q, ŷ + q], and the
    mean of 2q (q one half-width, or one per row)."""
    lower, upper = intervals(np.asarray(prediction, np.float64), q)
    y = np.asarray(y, np.float64)
    return float(np.mean((lower <= y) & (y <= upper))), float(np.mean(2.0 * np.asarray(q, np.float64)))


def set_coverage(y: np.ndarray, proba: np.ndarray, q: float) -> tuple[float, float]:
    """(coverage, mean set size): the share of rows whose set holds their true class `y`
    (class indices, rows,), and the mean number of classes per set."""
    sets = prediction_sets(proba, q)
    return float(np.mean(sets[np.arange(len(y)), np.asarray(y, np.int64)])), float(sets.sum(axis=1).mean())
