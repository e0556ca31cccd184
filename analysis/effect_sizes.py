"""Paired effect sizes for two methods measured on the same seeds.

Every function takes the two score vectors ``a`` and ``b`` aligned by seed (``a[i]`` and ``b[i]``
come from the same seed) and describes ``a`` relative to ``b``; a positive value means ``a``
scored higher. Whether higher is better depends on the metric and is left to the reader.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["MeanDiff", "hedges_g_paired", "mean_diff_ci", "vargha_delaney_a12_paired"]


@dataclass(frozen=True)
class MeanDiff:
    """Mean paired difference ``mean(a - b)`` and its bootstrap confidence interval.

    ``ci_method`` is ``"BCa"``, ``"percentile"`` (BCa undefined, e.g. heavily tied
    differences) or ``"degenerate"`` (all differences equal: the interval is that one value).
    """

    estimate: float
    ci_low: float
    ci_high: float
    ci_method: str


def _paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired scores must be 1-D and of equal length, got {a.shape}, {b.shape}")
    if a.size < 2:
        raise ValueError(f"paired effect sizes need at least 2 seeds, got {a.size}")
    return a - b


def mean_diff_ci(
    a: np.ndarray,
    b: np.ndarray,
    *,
    confidence_level: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> MeanDiff:
    """Mean of the paired differences with a bootstrap CI that resamples seeds.

    Resampling the per-seed differences is the paired bootstrap (a seed's two scores stay
    together). ``scipy.stats.bootstrap`` computes a BCa interval; where BCa is undefined it
    falls back to the percentile interval. ``seed`` fixes the resampling so results repeat.
    """
    d = _paired(a, b)
    estimate = float(np.mean(d))
    if np.ptp(d) == 0.0:
        return MeanDiff(estimate, estimate, estimate, "degenerate")
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            res = stats.bootstrap(
                (d,),
                np.mean,
                n_resamples=n_resamples,
                confidence_level=confidence_level,
                method=method,
                vectorized=True,
                rng=np.random.default_rng(seed),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return MeanDiff(estimate, low, high, method)
    return MeanDiff(estimate, float(np.min(d)), float(np.max(d)), "degenerate")  # pragma: no cover


def vargha_delaney_a12_paired(a: np.ndarray, b: np.ndarray) -> float:
    """Paired Vargha–Delaney A12: the share of seeds where ``a > b``, plus half the ties.

    The classic (unpaired) A12 compares every score of ``a`` with every score of ``b``; with
    seeds as common random numbers the meaningful pairs are the same-seed ones, so this is
    ``mean(a > b) + 0.5 * mean(a == b)`` over seeds. 0.5 = no tendency; 1 = ``a`` wins on every
    seed; 0 = ``b`` wins on every seed. Bouthillier et al. (2021) call it P(A > B).
    """
    d = _paired(a, b)
    return float(np.mean(d > 0) + 0.5 * np.mean(d == 0))


def hedges_g_paired(a: np.ndarray, b: np.ndarray) -> float:
    """Hedges' g for paired data: g_z = J * d_z.

    ``d_z = mean(d) / sd(d)`` with ``d = a - b`` and the sample sd (ddof=1); the small-sample
    correction is ``J = 1 - 3 / (4 * df - 1)`` with ``df = n - 1`` (Hedges & Olkin 1985,
    applied to the one-sample d_z). Standardised by the sd of the *differences*, so it is not
    comparable to an unpaired Cohen's d. 0 when every difference is 0; NaN when the
    differences are all equal but non-zero (zero variance: undefined).
    """
    d = _paired(a, b)
    sd = float(np.std(d, ddof=1))
    mean = float(np.mean(d))
    if sd == 0.0:
        return 0.0 if mean == 0.0 else float("nan")
    df = d.size - 1
    j = 1.0 - 3.0 / (4.0 * df - 1.0)
    return j * mean / sd
