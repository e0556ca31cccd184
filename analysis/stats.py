"""Paired comparison of methods over seeds: omnibus test, pairwise tests, Holm, effect sizes.

Protocol (reference doc C2, steps 4-7), for one metric of a confirmation phase in which seed
``s`` fixes init, data order and augmentation identically in every method, so scores are
*paired by seed* (the seed is the block):

* Omnibus: Friedman (``scipy.stats.friedmanchisquare``) over all methods when there are at
  least 3; with exactly 2 methods the omnibus *is* the single pairwise Wilcoxon test.
* Pairwise: Wilcoxon signed-rank on the per-seed differences (``scipy.stats.wilcoxon``,
  two-sided, ``zero_method="wilcox"``: seeds where the two methods tie exactly are dropped, as in
  Wilcoxon's original test; ``method="auto"``: scipy's exact null distribution for small samples
  without ties, else the normal approximation). If every difference is zero, p = 1.
* Family: all pairs, or every method against ``baseline``. Holm's step-down correction
  (``statsmodels...multipletests(method="holm")``) controls the family-wise error rate;
  ``significant`` is its reject decision at ``alpha``. Pairwise verdicts are not gated on the
  omnibus (Benavoli et al. 2016); the omnibus is reported alongside.
* Effect sizes, always next to p: mean paired difference (a - b) with a seeded paired bootstrap
  CI (BCa, percentile fallback), paired Vargha–Delaney A12 and paired Hedges' g_z
  (see ``analysis.effect_sizes``).
* Power floor: an exact two-sided Wilcoxon over K seeds cannot give p < 2 / 2**K, and Holm's
  smallest threshold is alpha / m for m tests. When 2 / 2**K > alpha / m nothing in the family
  can be significant; a note says so and how many seeds would be needed.

Secondary (exploratory) metrics use Benjamini–Hochberg FDR instead: ``adjust_secondary``.

Methods are ordered by name; pairs follow that order. Performance: statsmodels' Holm branch
calls ``gc.collect()`` on every call (~0.1 s in a process that has imported torch); callers
that run many comparisons in a loop (simulations) can wrap the loop in ``gc.freeze()`` /
``gc.unfreeze()``, which makes that collection nearly free.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.effect_sizes import hedges_g_paired, mean_diff_ci, vargha_delaney_a12_paired

__all__ = [
    "PAIRWISE_COLUMNS",
    "ZERO_METHOD",
    "Comparison",
    "OmnibusResult",
    "adjust_secondary",
    "compare_methods",
    "min_wilcoxon_p",
    "seeds_needed",
]

ZERO_METHOD = "wilcox"
REQUIRED_COLUMNS = ("method", "seed", "metric", "value")
PAIRWISE_COLUMNS = (
    "method_a",
    "method_b",
    "p_value",
    "p_adjusted",
    "significant",
    "effect_size",
    "ci_low",
    "ci_high",
    "mean_diff",
    "a12",
    "hedges_g",
    "n",
    "statistic",
    "ci_method",
)


@dataclass(frozen=True)
class OmnibusResult:
    """The omnibus test over all methods: ``"friedman"``, or ``"wilcoxon"`` for 2 methods."""

    test: str
    statistic: float
    p_value: float
    n_methods: int
    n_blocks: int


@dataclass(frozen=True)
class Comparison:
    """Result of ``compare_methods`` for one metric.

    ``pairwise`` has one row per test in the family (``PAIRWISE_COLUMNS``): ``effect_size`` is
    the mean paired difference ``method_a - method_b`` (= ``mean_diff``) and ``ci_low/ci_high``
    its bootstrap CI; ``a12`` is the share of seeds where ``method_a`` beats ``method_b`` (ties
    count half); ``n`` is the number of paired seeds. With a baseline, ``method_b`` is always
    the baseline. ``notes`` holds warnings a reader must see (e.g. the power floor).
    """

    metric: str
    alpha: float
    baseline: str | None
    methods: tuple[str, ...]
    seeds: tuple[Any, ...]
    omnibus: OmnibusResult
    pairwise: pd.DataFrame
    correction: str = "holm"
    zero_method: str = ZERO_METHOD
    notes: list[str] = field(default_factory=list)

    @property
    def n_tests(self) -> int:
        return len(self.pairwise)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: every test with raw and adjusted p, effect and CI."""
        rows = self.pairwise.astype(object).where(self.pairwise.notna(), None)
        return {
            "metric": self.metric,
            "alpha": self.alpha,
            "baseline": self.baseline,
            "family": "vs-baseline" if self.baseline is not None else "all-pairs",
            "correction": self.correction,
            "zero_method": self.zero_method,
            "n_tests": self.n_tests,
            "methods": list(self.methods),
            "seeds": [s.item() if isinstance(s, np.generic) else s for s in self.seeds],
            "omnibus": asdict(self.omnibus),
            "pairwise": rows.to_dict(orient="records"),
            "notes": list(self.notes),
        }


def min_wilcoxon_p(n_seeds: int) -> float:
    """Smallest two-sided p-value an exact Wilcoxon signed-rank test can give: 2 / 2**K."""
    return 2.0 / 2.0**n_seeds


def seeds_needed(n_tests: int, alpha: float) -> int:
    """Fewest seeds K with 2 / 2**K <= alpha / n_tests, i.e. Holm could reject at all."""
    k = max(1, math.ceil(math.log2(2.0 * n_tests / alpha)))
    while min_wilcoxon_p(k) > alpha / n_tests:  # guard against log2 rounding
        k += 1
    return k


def _wide_table(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Validate the tidy table and pivot one metric to seeds x methods."""
    if not isinstance(scores, pd.DataFrame):
        raise ValueError(f"scores must be a pandas DataFrame, got {type(scores).__name__}")
    missing = [c for c in REQUIRED_COLUMNS if c not in scores.columns]
    if missing:
        raise ValueError(f"scores is missing columns {missing}; need {list(REQUIRED_COLUMNS)}")
    rows = scores.loc[scores["metric"] == metric, ["method", "seed", "value"]]
    if rows.empty:
        known = sorted(map(str, scores["metric"].unique()))
        raise ValueError(f"no rows for metric {metric!r}; metrics present: {known}")
    dup = rows.duplicated(["method", "seed"])
    if dup.any():
        first = rows.loc[dup].iloc[0]
        raise ValueError(
            f"duplicate rows for method {first['method']!r}, seed {first['seed']!r} "
            f"(metric {metric!r}): one value per method and seed expected"
        )
    values = pd.to_numeric(rows["value"], errors="coerce")
    if not np.isfinite(values.to_numpy(dtype=float)).all():
        raise ValueError(f"metric {metric!r} has missing, non-numeric or non-finite values")
    rows = rows.assign(value=values.astype(float))
    methods = sorted(pd.unique(rows["method"]), key=str)
    if len(methods) < 2:
        raise ValueError(f"need at least 2 methods to compare, got {methods}")
    seed_sets = {m: set(rows.loc[rows["method"] == m, "seed"]) for m in methods}
    all_seeds = set().union(*seed_sets.values())
    for m, s in seed_sets.items():
        if s != all_seeds:
            lacking = sorted(all_seeds - s, key=str)
            raise ValueError(
                f"methods must share the same seeds (paired design): {m!r} lacks seeds {lacking}"
            )
    if len(all_seeds) < 2:
        raise ValueError(f"need at least 2 paired seeds, got {len(all_seeds)}")
    wide = rows.pivot(index="seed", columns="method", values="value")
    return wide.sort_index()[methods]


def _wilcoxon(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(statistic, p) of the two-sided paired Wilcoxon signed-rank test; p = 1 if all tie."""
    if np.all(a == b):
        return 0.0, 1.0
    res = stats.wilcoxon(a, b, zero_method=ZERO_METHOD, alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def _friedman(wide: pd.DataFrame) -> tuple[float, float]:
    """(statistic, p) of Friedman's test with seeds as blocks; p = 1 if every block is tied."""
    if (wide.nunique(axis=1) == 1).all():
        return 0.0, 1.0
    res = stats.friedmanchisquare(*(wide[m].to_numpy() for m in wide.columns))
    return float(res.statistic), float(res.pvalue)


def compare_methods(
    scores: pd.DataFrame,
    metric: str,
    *,
    alpha: float = 0.05,
    baseline: str | None = None,
    confidence_level: float = 0.95,
    n_resamples: int = 9999,
    bootstrap_seed: int = 0,
) -> Comparison:
    """Compare methods on one metric, paired by seed (see the module docstring).

    ``scores``: tidy table with columns ``method, seed, metric, value``; rows of other metrics
    are ignored. Every method must have exactly one value for each of the same seeds.
    ``baseline``: compare every other method against it (family of size methods - 1) instead
    of all pairs. ``bootstrap_seed`` makes the bootstrap CIs deterministic.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    wide = _wide_table(scores, metric)
    methods = tuple(wide.columns)
    if baseline is not None and baseline not in methods:
        raise ValueError(f"baseline {baseline!r} is not among the methods {list(methods)}")
    n_seeds = len(wide)

    if baseline is None:
        pairs = list(itertools.combinations(methods, 2))
    else:
        pairs = [(m, baseline) for m in methods if m != baseline]

    records = []
    for a_name, b_name in pairs:
        a = wide[a_name].to_numpy()
        b = wide[b_name].to_numpy()
        statistic, p = _wilcoxon(a, b)
        diff = mean_diff_ci(
            a, b, confidence_level=confidence_level, n_resamples=n_resamples, seed=bootstrap_seed
        )
        records.append(
            {
                "method_a": a_name,
                "method_b": b_name,
                "p_value": p,
                "effect_size": diff.estimate,
                "ci_low": diff.ci_low,
                "ci_high": diff.ci_high,
                "mean_diff": diff.estimate,
                "a12": vargha_delaney_a12_paired(a, b),
                "hedges_g": hedges_g_paired(a, b),
                "n": n_seeds,
                "statistic": statistic,
                "ci_method": diff.ci_method,
            }
        )
    pairwise = pd.DataFrame.from_records(records)
    reject, p_adj, _, _ = multipletests(pairwise["p_value"].to_numpy(), alpha=alpha, method="holm")
    pairwise["p_adjusted"] = p_adj
    pairwise["significant"] = reject.astype(bool)
    pairwise = pairwise[list(PAIRWISE_COLUMNS)]

    notes: list[str] = []
    if len(methods) >= 3:
        f_stat, f_p = _friedman(wide)
        omnibus = OmnibusResult("friedman", f_stat, f_p, len(methods), n_seeds)
        if (wide.nunique(axis=1) == 1).all():
            notes.append("All methods score identically on every seed; Friedman p set to 1.")
        if f_p > alpha and pairwise["significant"].any():
            notes.append(
                f"Friedman is not significant (p = {f_p:.3g}) while some Holm-adjusted pairwise "
                "tests are; read those pairwise verdicts with care."
            )
    else:
        row = pairwise.iloc[0]
        omnibus = OmnibusResult(
            "wilcoxon", float(row["statistic"]), float(row["p_value"]), 2, n_seeds
        )
        notes.append("Two methods: the omnibus is the single paired Wilcoxon signed-rank test.")

    m = len(pairwise)
    floor = min_wilcoxon_p(n_seeds)
    if floor > alpha / m:
        notes.append(
            f"Power floor: with {n_seeds} paired seeds the smallest possible two-sided Wilcoxon "
            f"p-value is 2/2^{n_seeds} = {floor:.3g}, above Holm's smallest threshold "
            f"alpha/m = {alpha:g}/{m} = {alpha / m:.3g}. No test in this family can be "
            f"significant, so 'not significant' is not evidence of no difference; at least "
            f"{seeds_needed(m, alpha)} seeds are needed."
        )
    ties = int(sum((wide[a] == wide[b]).any() for a, b in pairs))
    if ties:
        notes.append(
            f"{ties} comparison(s) have seeds with exactly tied scores; zero differences are "
            f"dropped (zero_method={ZERO_METHOD!r}), which lowers the effective number of seeds."
        )

    return Comparison(
        metric=metric,
        alpha=alpha,
        baseline=baseline,
        methods=methods,
        seeds=tuple(wide.index),
        omnibus=omnibus,
        pairwise=pairwise.reset_index(drop=True),
        notes=notes,
    )


def adjust_secondary(p_values: Any) -> np.ndarray:
    """Benjamini–Hochberg FDR-adjusted p-values for exploratory (secondary-metric) tests.

    ``statsmodels...multipletests(method="fdr_bh")``; returns an array in the input order.
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    if p.size == 0:
        return p.copy()
    if not np.all((p >= 0.0) & (p <= 1.0)):
        raise ValueError("p_values must all lie in [0, 1] (no NaN)")
    return multipletests(p, method="fdr_bh")[1]
