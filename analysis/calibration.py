"""How often the comparison's decisions are wrong, measured by simulating confirmation studies.

A simulated study has ``n_seeds`` seeds x ``n_cells`` cells. A cell's score on a seed is a
seed effect shared by every cell (common random numbers, SD 5 x ``sd_diff``) plus the cell's
shift plus independent normal noise of SD ``sd_diff / sqrt(2)``, so the per-seed difference of
two cells has SD ``sd_diff``. Cell ``c0`` is shifted up by ``effect`` x ``sd_diff``; the
others are identical. Each study goes through exactly the decision rule of
``analysis.compare_methods``: ``analysis.stats.family_decisions`` (tests chosen by measurement,
Holm over all pairs; all studies at once) and, with a ``rope``,
``analysis.bayesian.pair_posterior`` (decision at ``1 - alpha``).

Rates, frequentist and Bayesian alike:

* family-wise error: the share of studies with at least one false claim of a difference (a
  pair of identical cells called different, or a ``c0`` pair called different the wrong way);
* power: the share of ``c0``'s pairs called different the right way (over studies and pairs);
* Bayesian only: ``false_equivalence``, the share of ``c0``'s pairs called equivalent, and
  ``equivalence``, the share of pairs of identical cells called equivalent (right when the
  ROPE is wide against ``sd_diff``).

``python benchmarks/calibration.py`` prints the table; tests/test_analysis_calibration.py
checks it.
"""

from __future__ import annotations

import gc
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis.bayesian import pair_posterior
from analysis.stats import family_decisions

__all__ = ["ErrorRates", "error_rates", "simulate_scores"]


@dataclass(frozen=True)
class ErrorRates:
    """Measured rates of one simulated design (see the module docstring); Bayesian rates are
    None without a rope, ``power`` and ``false_equivalence`` None when ``effect`` is 0."""

    n_seeds: int
    n_cells: int
    effect: float
    n_studies: int
    family_wise_error: float
    power: float | None
    parametric_share: float  # studies whose tests took the parametric path
    bayes_family_wise_error: float | None = None
    bayes_power: float | None = None
    bayes_false_equivalence: float | None = None
    bayes_equivalence: float | None = None


def simulate_scores(
    rng: np.random.Generator,
    *,
    n_studies: int,
    n_seeds: int,
    n_cells: int,
    effect: float = 0.0,
    sd_diff: float = 1.0,
) -> np.ndarray:
    """Scores of ``n_studies`` simulated studies, shape (studies, seeds, cells)."""
    seed_effect = rng.normal(0.0, 5.0 * sd_diff, (n_studies, n_seeds, 1))
    noise = rng.normal(0.0, sd_diff / np.sqrt(2.0), (n_studies, n_seeds, n_cells))
    shift = np.zeros(n_cells)
    shift[0] = effect * sd_diff
    return seed_effect + noise + shift


def _rate(hits: np.ndarray) -> float | None:
    return float(np.mean(hits)) if hits.size else None


def _bayes_decisions(
    scores: np.ndarray,
    pairs: list[tuple[int, int]],
    *,
    rope: float,
    alpha: float,
    n_samples: int,
    seed: int,
) -> np.ndarray:
    """The Bayesian decision of every study and pair, shape (studies, pairs)."""
    return np.array(
        [
            [
                pair_posterior(
                    study[:, a],
                    study[:, b],
                    rope=rope,
                    threshold=1.0 - alpha,
                    n_samples=n_samples,
                    seed=seed,
                ).decision
                for a, b in pairs
            ]
            for study in scores
        ]
    )


def error_rates(
    n_seeds: int,
    *,
    n_cells: int = 4,
    effect: float = 0.0,
    sd_diff: float = 1.0,
    n_studies: int = 2000,
    alpha: float = 0.05,
    rope: float | None = None,
    bayes_samples: int = 500,
    seed: int = 0,
) -> ErrorRates:
    """Simulate ``n_studies`` studies and measure the decisions' error rates.

    Args:
        n_seeds: seeds per cell.
        n_cells: cells per study (all pairs are tested: Holm over n_cells * (n_cells - 1) / 2).
        effect: shift of cell ``c0`` in SDs of the paired difference (0: the null).
        sd_diff: SD of the paired difference in metric units (matters only against ``rope``).
        n_studies: simulated studies.
        alpha: level of the tests; the Bayesian decision threshold is ``1 - alpha``.
        rope: ROPE half-width in metric units for the Bayesian rates, or None to skip them
            (they cost one baycomp call per study and pair, the frequentist rates almost
            nothing).
        bayes_samples: posterior samples per Bayesian test (fewer than a report uses, for
            speed; the decision's Monte Carlo error at 0.95 is about 0.01 with 500).
        seed: seed of the simulation.
    """
    pairs = list(itertools.combinations(range(n_cells), 2))
    shifted = np.array([a == 0 and effect != 0.0 for a, _ in pairs])
    scores = simulate_scores(
        np.random.default_rng(seed),
        n_studies=n_studies,
        n_seeds=n_seeds,
        n_cells=n_cells,
        effect=effect,
        sd_diff=sd_diff,
    )
    up = np.stack([(scores[..., a] - scores[..., b]).mean(axis=-1) > 0 for a, b in pairs], -1)
    gc.freeze()  # statsmodels' Holm calls gc.collect() on every call; keep that cheap
    try:
        parametric, called = family_decisions(scores, pairs, alpha=alpha)
    finally:
        gc.unfreeze()
    rates: dict[str, Any] = {
        "family_wise_error": float(np.mean(np.any(called & ~(shifted & up), axis=-1))),
        "power": _rate((called & up)[:, shifted]),
        "parametric_share": float(np.mean(parametric)),
    }
    if rope is not None:
        decided = _bayes_decisions(
            scores, pairs, rope=rope, alpha=alpha, n_samples=bayes_samples, seed=seed
        )
        wrong = (decided == "b better") | ((decided == "a better") & ~shifted)
        rates |= {
            "bayes_family_wise_error": float(np.mean(np.any(wrong, axis=-1))),
            "bayes_power": _rate((decided == "a better")[:, shifted]),
            "bayes_false_equivalence": _rate((decided == "equivalent")[:, shifted]),
            "bayes_equivalence": _rate((decided == "equivalent")[:, ~shifted]),
        }
    return ErrorRates(n_seeds, n_cells, effect, n_studies, **rates)
