"""Paired comparison of methods over seeds: tests chosen by measurement, Holm, effect sizes,
and a Bayesian comparison beside them.

Protocol (reference doc C2, steps 4-7), for one metric of a confirmation phase in which seed
``s`` fixes init, data order and augmentation identically in every method, so scores are
*paired by seed* (the seed is the block):

* Path: ``analysis.assumptions.choose_tests`` measures the normality of the paired differences
  (Shapiro–Wilk) and the equality of their variances (Bartlett) and picks the parametric path
  (paired t-tests; repeated-measures ANOVA omnibus, or Friedman's when the variances differ)
  or the non-parametric one (Wilcoxon signed-rank; Friedman omnibus), as autorank does;
  ``path=`` forces one. The tests themselves are in ``analysis.paired_tests``. With exactly
  2 methods the omnibus *is* the single pairwise test.
* Family: all pairs, or every method against ``baseline``. Holm's step-down correction
  (``statsmodels...multipletests(method="holm")``) controls the family-wise error rate;
  ``significant`` is its reject decision at ``alpha``. Pairwise verdicts are not gated on the
  omnibus (Benavoli et al. 2016); the omnibus is reported alongside.
* Effect sizes, always next to p: mean paired difference (a - b) with a seeded paired bootstrap
  CI (BCa, percentile fallback), paired Vargha–Delaney A12 and paired Hedges' g_z
  (see ``analysis.effect_sizes``).
* Bayesian (``analysis.bayesian``, unless ``rope=None``): per pair P(a better), P(equivalent),
  P(b better) from baycomp's signed-rank test with a ROPE of ``±rope`` metric units and the
  decision at ``1 - alpha``; per method P(best). "Better" follows ``mode``.
* Power floor: on the Wilcoxon path an exact two-sided test over K seeds cannot give
  p < 2 / 2**K, and Holm's smallest threshold is alpha / m for m tests. When 2 / 2**K >
  alpha / m nothing in the family can be significant; a note says so and how many seeds would
  be needed.

Secondary (exploratory) metrics use Benjamini–Hochberg FDR instead: ``adjust_secondary``.

Methods are ordered by name; pairs follow that order. Performance: statsmodels' Holm branch
calls ``gc.collect()`` on every call (~0.1 s in a process that has imported torch); callers
that run many comparisons in a loop (simulations) can wrap the loop in ``gc.freeze()`` /
``gc.unfreeze()``, which makes that collection nearly free (``analysis.calibration`` does).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from analysis.assumptions import (
    NON_PARAMETRIC,
    PARAMETRIC,
    PathChoice,
    check_normality,
    choose_tests,
    differences,
)
from analysis.bayesian import DEFAULT_ROPE, DEFAULT_SAMPLES, p_best, pair_posterior
from analysis.effect_sizes import hedges_g_paired, mean_diff_ci, vargha_delaney_a12_paired
from analysis.paired_tests import ZERO_METHOD, omnibus_test, pairwise_tests

__all__ = [
    "PAIRWISE_COLUMNS",
    "ZERO_METHOD",
    "Comparison",
    "FamilyResult",
    "OmnibusResult",
    "adjust_secondary",
    "compare_methods",
    "family_decisions",
    "min_wilcoxon_p",
    "run_family",
    "seeds_needed",
]

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
    "test",
    "p_a_better",
    "p_equivalent",
    "p_b_better",
    "bayes_decision",
)
TEST_NAMES = {
    "paired_t": "paired t-test",
    "wilcoxon": "Wilcoxon signed-rank test",
    "rm_anova": "repeated-measures ANOVA",
    "friedman": "Friedman test",
}


@dataclass(frozen=True)
class OmnibusResult:
    """The omnibus test over all methods: ``"rm_anova"`` or ``"friedman"``; for 2 methods the
    single pairwise test (``"paired_t"`` or ``"wilcoxon"``)."""

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
    count half); ``n`` is the number of paired seeds; ``test`` the pairwise test of the path;
    ``p_a_better, p_equivalent, p_b_better, bayes_decision`` the Bayesian signed-rank test
    (NaN / None when ``rope`` is None). With a baseline, ``method_b`` is always the baseline.
    ``test_choice`` says which path was taken and why; ``p_best`` is each method's P(best)
    (None without the Bayesian comparison). ``notes`` holds warnings a reader must see (e.g.
    the power floor).
    """

    metric: str
    alpha: float
    baseline: str | None
    methods: tuple[str, ...]
    seeds: tuple[Any, ...]
    omnibus: OmnibusResult
    pairwise: pd.DataFrame
    test_choice: PathChoice
    mode: str = "max"
    rope: float | None = DEFAULT_ROPE
    p_best: pd.Series | None = None
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
            "test_choice": asdict(self.test_choice),
            "correction": self.correction,
            "zero_method": self.zero_method,
            "n_tests": self.n_tests,
            "methods": list(self.methods),
            "seeds": [s.item() if isinstance(s, np.generic) else s for s in self.seeds],
            "omnibus": asdict(self.omnibus),
            "pairwise": rows.to_dict(orient="records"),
            "mode": self.mode,
            "rope": self.rope,
            "p_best": None if self.p_best is None else self.p_best.to_dict(),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class FamilyResult:
    """The tests of one family: the path, then per pair (in ``pairs`` order) the statistic,
    the raw and Holm-adjusted p-values and Holm's reject decision at alpha."""

    choice: PathChoice
    statistic: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray


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


def _forced(path: str, n_methods: int) -> PathChoice:
    """The tests of ``path`` when the caller chose it (autorank's ``force_mode``)."""
    if path not in (PARAMETRIC, NON_PARAMETRIC):
        raise ValueError(f"path must be {PARAMETRIC!r} or {NON_PARAMETRIC!r}, got {path!r}")
    pairwise = "paired_t" if path == PARAMETRIC else "wilcoxon"
    omnibus = ("rm_anova" if path == PARAMETRIC else "friedman") if n_methods >= 3 else pairwise
    return PathChoice(
        path, pairwise, omnibus, None, None, None, f"the {path} path was chosen by the caller"
    )


def _holm(p_value: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(reject, adjusted p) of Holm's step-down correction of one family."""
    reject, p_adjusted, _, _ = multipletests(p_value, alpha=alpha, method="holm")
    return reject.astype(bool), p_adjusted


def run_family(
    wide: pd.DataFrame,
    pairs: list[tuple[str, str]],
    *,
    alpha: float = 0.05,
    path: str | None = None,
) -> FamilyResult:
    """Choose the tests (or take ``path``), run the pairwise test of every pair in ``pairs``
    on ``wide`` (seeds x methods) and correct the family with Holm."""
    if path is None:
        choice = choose_tests(wide, pairs, alpha=alpha)
    else:
        choice = _forced(path, wide.shape[1])
    statistic, p_value = pairwise_tests(differences(wide, pairs), choice.pairwise_test)
    significant, p_adjusted = _holm(p_value, alpha)
    return FamilyResult(choice, statistic, p_value, p_adjusted, significant)


def family_decisions(
    scores: np.ndarray, pairs: list[tuple[int, int]], *, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """``run_family``'s decisions for a batch of studies at once (``analysis.calibration``).

    ``scores``: shape (studies, seeds, methods); ``pairs``: column indices (a, b). Returns
    (parametric: the path of every study, shape (studies,); significant: Holm's decisions,
    shape (studies, pairs)). The same rule, tests and correction as ``run_family`` (without
    the words of the path's reason and the omnibus, which do not change a decision).
    """
    diffs = np.stack([scores[..., a] - scores[..., b] for a, b in pairs], axis=-1)
    parametric = check_normality(diffs, alpha=alpha).parametric
    _, p_t = pairwise_tests(diffs, "paired_t")
    _, p_wilcoxon = pairwise_tests(diffs, "wilcoxon")
    p_value = np.where(parametric[:, None], p_t, p_wilcoxon)
    return parametric, np.stack([_holm(row, alpha)[0] for row in p_value])


def _bayesian_columns(
    wide: pd.DataFrame,
    pairs: list[tuple[str, str]],
    *,
    rope: float | None,
    mode: str,
    alpha: float,
    n_samples: int,
    seed: int,
) -> dict[str, list]:
    """The Bayesian signed-rank columns of the pairwise table (NaN / None without a rope)."""
    if rope is None:
        nan = [float("nan")] * len(pairs)
        return {
            "p_a_better": nan,
            "p_equivalent": nan,
            "p_b_better": nan,
            "bayes_decision": [None] * len(pairs),
        }
    posteriors = [
        pair_posterior(
            wide[a].to_numpy(),
            wide[b].to_numpy(),
            rope=rope,
            mode=mode,
            threshold=1.0 - alpha,
            n_samples=n_samples,
            seed=seed,
        )
        for a, b in pairs
    ]
    return {
        "p_a_better": [p.p_a_better for p in posteriors],
        "p_equivalent": [p.p_equivalent for p in posteriors],
        "p_b_better": [p.p_b_better for p in posteriors],
        "bayes_decision": [p.decision for p in posteriors],
    }


def _omnibus(wide: pd.DataFrame, family: FamilyResult) -> OmnibusResult:
    n_seeds, n_methods = wide.shape
    test = family.choice.omnibus_test
    if n_methods >= 3:
        statistic, p = omnibus_test(wide, test)
    else:
        statistic, p = float(family.statistic[0]), float(family.p_value[0])
    return OmnibusResult(test, statistic, p, n_methods, n_seeds)


def _notes(
    wide: pd.DataFrame,
    pairs: list[tuple[str, str]],
    family: FamilyResult,
    omnibus: OmnibusResult,
    alpha: float,
) -> list[str]:
    """Warnings a reader must see next to the verdicts."""
    n_seeds, n_methods = wide.shape
    notes: list[str] = []
    name = TEST_NAMES[omnibus.test]
    if n_methods >= 3:
        if (wide.nunique(axis=1) == 1).all():
            notes.append(f"All methods score identically on every seed; {name} p set to 1.")
        if omnibus.p_value > alpha and family.significant.any():
            notes.append(
                f"The {name} is not significant (p = {omnibus.p_value:.3g}) while some "
                "Holm-adjusted pairwise tests are; read those pairwise verdicts with care."
            )
    else:
        notes.append(f"Two methods: the omnibus is the single {TEST_NAMES[omnibus.test]}.")
    if family.choice.pairwise_test != "wilcoxon":
        return notes
    m = len(pairs)
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
    return notes


def compare_methods(
    scores: pd.DataFrame,
    metric: str,
    *,
    alpha: float = 0.05,
    baseline: str | None = None,
    mode: str = "max",
    rope: float | None = DEFAULT_ROPE,
    path: str | None = None,
    confidence_level: float = 0.95,
    n_resamples: int = 9999,
    bootstrap_seed: int = 0,
    bayes_samples: int = DEFAULT_SAMPLES,
) -> Comparison:
    """Compare methods on one metric, paired by seed (see the module docstring).

    ``scores``: tidy table with columns ``method, seed, metric, value``; rows of other metrics
    are ignored. Every method must have exactly one value for each of the same seeds.
    ``baseline``: compare every other method against it (family of size methods - 1) instead
    of all pairs. ``mode``: ``"max"`` if higher scores are better, ``"min"`` if lower (only
    the Bayesian "better" depends on it). ``rope``: half-width of the region of practical
    equivalence in metric units, or None for no Bayesian comparison. ``path``: None to choose
    the tests by measurement, or ``"parametric"`` / ``"non-parametric"`` to force them.
    ``bootstrap_seed`` makes the bootstrap CIs, the Bayesian sampling and P(best)
    deterministic; ``bayes_samples`` is the number of posterior samples.
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
    family = run_family(wide, pairs, alpha=alpha, path=path)

    records = []
    for a_name, b_name in pairs:
        a = wide[a_name].to_numpy()
        b = wide[b_name].to_numpy()
        diff = mean_diff_ci(
            a, b, confidence_level=confidence_level, n_resamples=n_resamples, seed=bootstrap_seed
        )
        records.append(
            {
                "method_a": a_name,
                "method_b": b_name,
                "effect_size": diff.estimate,
                "ci_low": diff.ci_low,
                "ci_high": diff.ci_high,
                "mean_diff": diff.estimate,
                "a12": vargha_delaney_a12_paired(a, b),
                "hedges_g": hedges_g_paired(a, b),
                "n": n_seeds,
                "ci_method": diff.ci_method,
            }
        )
    pairwise = pd.DataFrame.from_records(records).assign(
        p_value=family.p_value,
        p_adjusted=family.p_adjusted,
        significant=family.significant,
        statistic=family.statistic,
        test=family.choice.pairwise_test,
        **_bayesian_columns(
            wide,
            pairs,
            rope=rope,
            mode=mode,
            alpha=alpha,
            n_samples=bayes_samples,
            seed=bootstrap_seed,
        ),
    )[list(PAIRWISE_COLUMNS)]
    omnibus = _omnibus(wide, family)
    best = (
        None
        if rope is None
        else p_best(wide, mode=mode, n_draws=bayes_samples, seed=bootstrap_seed)
    )
    return Comparison(
        metric=metric,
        alpha=alpha,
        baseline=baseline,
        methods=methods,
        seeds=tuple(wide.index),
        omnibus=omnibus,
        pairwise=pairwise.reset_index(drop=True),
        test_choice=family.choice,
        mode=mode,
        rope=rope,
        p_best=best,
        notes=_notes(wide, pairs, family, omnibus, alpha),
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
