"""Bayesian comparison beside the tests (Benavoli, Corani, Demšar & Zaffalon 2017, JMLR 18).

Per pair of methods: baycomp's Bayesian signed-rank test (``baycomp.SignedRankTest``; a
Dirichlet process over the per-seed differences with a prior pseudo-observation at 0 of
strength 0.5) with a region of practical equivalence (ROPE) of ``±rope`` in metric units.
It gives P(a better), P(equivalent) and P(b better): the posterior probability that most of
the difference's mass lies above the ROPE, inside it, or below it. Unlike a p-value it does
not hit a floor with 3–5 seeds, and it can say "equivalent". Decision rule (autorank's): the
outcome whose probability reaches ``threshold`` (default 0.95), else "inconclusive". The
sampling is seeded (``random_state``), so the probabilities repeat.

Per method, for the ranked table: P(best), the posterior probability that the method has the
best mean over seeds under the same kind of model, the Bayesian bootstrap (Rubin 1981):
Dirichlet(1, ..., 1) weights over the seeds (``numpy``'s Dirichlet sampler, seeded), the best
weighted mean in each draw. (The signed-rank test's pseudo-observation, a seed on which every
method ties, adds the same to every method and so leaves the best unchanged.)

"Better" follows ``mode``: higher scores are better for ``"max"``, lower for ``"min"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import baycomp
import numpy as np
import pandas as pd

__all__ = [
    "DECISIONS",
    "DEFAULT_ROPE",
    "DEFAULT_SAMPLES",
    "PairPosterior",
    "decide",
    "p_best",
    "pair_posterior",
]

DEFAULT_ROPE = 1.0  # metric units: one percentage point of r_mean, recall or top-k accuracy
DEFAULT_SAMPLES = 5000
DECISIONS = ("a better", "equivalent", "b better", "inconclusive")


@dataclass(frozen=True)
class PairPosterior:
    """P(a better), P(equivalent), P(b better) (they sum to 1) and the decision."""

    p_a_better: float
    p_equivalent: float
    p_b_better: float
    decision: str


def decide(p_a_better: float, p_equivalent: float, p_b_better: float, threshold: float) -> str:
    """The outcome whose posterior probability reaches ``threshold``, else "inconclusive"."""
    for outcome, p in zip(DECISIONS[:3], (p_a_better, p_equivalent, p_b_better), strict=True):
        if p >= threshold:
            return outcome
    return "inconclusive"


def _check_mode(mode: str) -> None:
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")


def pair_posterior(
    a: np.ndarray,
    b: np.ndarray,
    *,
    rope: float = DEFAULT_ROPE,
    mode: str = "max",
    threshold: float = 0.95,
    n_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> PairPosterior:
    """Bayesian signed-rank test of ``a`` against ``b`` (scores aligned by seed).

    ``rope``: half-width of the region of practical equivalence, in metric units (> 0).
    """
    _check_mode(mode)
    if not rope > 0.0:
        raise ValueError(f"rope must be > 0 (metric units), got {rope}")
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    # baycomp works on y - x: "left" is x higher by more than the rope, "right" y higher
    a_higher, equivalent, b_higher = baycomp.SignedRankTest.probs(
        a, b, rope=rope, nsamples=n_samples, random_state=seed
    )
    a_better, b_better = (a_higher, b_higher) if mode == "max" else (b_higher, a_higher)
    probs = (float(a_better), float(equivalent), float(b_better))
    return PairPosterior(*probs, decide(*probs, threshold))


def p_best(
    wide: pd.DataFrame, *, mode: str = "max", n_draws: int = DEFAULT_SAMPLES, seed: int = 0
) -> pd.Series:
    """P(best) of every method (column of ``wide``, seeds x methods) by the Bayesian bootstrap
    over seeds; methods tied for best in a draw share it. Sums to 1."""
    _check_mode(mode)
    weights = np.random.default_rng(seed).dirichlet(np.ones(len(wide)), n_draws)
    means = weights @ wide.to_numpy(dtype=float)  # draws x methods
    best = means.max(axis=1, keepdims=True) if mode == "max" else means.min(axis=1, keepdims=True)
    is_best = np.isclose(means, best, rtol=1e-12, atol=0.0)
    share = is_best / is_best.sum(axis=1, keepdims=True)
    return pd.Series(share.mean(axis=0), index=wide.columns, name="p_best")
