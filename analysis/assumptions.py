"""Which tests fit the data: the parametric or the non-parametric path, chosen by measurement.

The rule follows autorank (Herbold 2020), applied to what a paired design assumes:

1. Normality. A paired t-test assumes that the per-seed differences of its pair are normal,
   so every tested pair's differences get a Shapiro–Wilk test (``scipy.stats.shapiro``) with
   Bonferroni's threshold ``alpha / m`` over the m pairs (autorank corrects over its
   populations). If any falls below it, or normality cannot be checked (fewer than 3 seeds;
   differences that are the same on every seed, for which a t statistic is undefined), the
   path is **non-parametric**: Friedman omnibus, Wilcoxon signed-rank pairwise. Otherwise it
   is **parametric**: paired t-tests.
2. Homoscedasticity (3+ methods). Repeated-measures ANOVA assumes sphericity: the differences
   of every pair of methods have the same variance. On the parametric path Bartlett's test
   (``scipy.stats.bartlett``, the test autorank uses on normal data) compares those variances.
   Equal: the omnibus is repeated-measures ANOVA. Unequal: the omnibus is Friedman's, which
   does not assume them, and the pairwise tests stay paired t-tests: each uses only its own
   pair's variance, so unequal variances across pairs do not bias it. (autorank moves to rank
   tests here because its parametric post-hoc, Tukey HSD, pools the variance.)

Bartlett's groups share methods, so they are not independent: the check is a screen, as in
autorank, not an exact test. Pairs whose methods tie on every seed carry no information about
either assumption and are left out of both checks.

``check_normality`` works on a batch of studies at once (any leading axes), so that
``analysis.calibration`` can run the same rule on thousands of simulated studies.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "NON_PARAMETRIC",
    "PARAMETRIC",
    "NormalityCheck",
    "PathChoice",
    "check_normality",
    "choose_tests",
    "differences",
]

PARAMETRIC = "parametric"
NON_PARAMETRIC = "non-parametric"
MIN_SEEDS_FOR_SHAPIRO = 3


@dataclass(frozen=True)
class PathChoice:
    """The path taken and why.

    ``pairwise_test``: ``"paired_t"`` or ``"wilcoxon"``; ``omnibus_test``: ``"rm_anova"`` or
    ``"friedman"`` (3+ methods; with 2 methods the omnibus is the pairwise test).
    ``normality_p``: the smallest Shapiro–Wilk p over the tested pairs, to compare with
    ``normality_threshold`` = alpha / pairs checked (None when normality was not checked);
    ``homoscedasticity_p``: Bartlett's p over all pairs' differences (None when it did not
    run); ``reason``: the choice in one sentence.
    """

    path: str
    pairwise_test: str
    omnibus_test: str
    normality_p: float | None
    normality_threshold: float | None
    homoscedasticity_p: float | None
    reason: str


@dataclass(frozen=True)
class NormalityCheck:
    """Shapiro–Wilk on the paired differences of a batch of studies.

    Arrays have the batch's leading shape, plus a last axis of pairs for ``informative``.
    ``informative``: the pair does not tie on every seed; ``constant``: some informative pair's
    differences are the same on every seed; ``min_p``: the smallest Shapiro–Wilk p over the
    informative pairs (NaN where none was tested); ``worst``: the index of that pair;
    ``threshold``: alpha / informative pairs; ``parametric``: the paired t-test path fits.
    """

    n_seeds: int
    informative: np.ndarray
    constant: np.ndarray
    min_p: np.ndarray
    worst: np.ndarray
    threshold: np.ndarray
    parametric: np.ndarray


def differences(wide: pd.DataFrame, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Per-seed differences ``a - b`` of every pair, shape (seeds, pairs)."""
    return np.stack([(wide[a] - wide[b]).to_numpy(dtype=float) for a, b in pairs], axis=-1)


def check_normality(diffs: np.ndarray, *, alpha: float = 0.05) -> NormalityCheck:
    """Rule 1 of the module docstring on ``diffs`` of shape (..., seeds, pairs)."""
    n_seeds = diffs.shape[-2]
    informative = np.any(diffs != 0.0, axis=-2)
    constant = np.any(informative & (np.ptp(diffs, axis=-2) == 0.0), axis=-1)
    n_checked = informative.sum(axis=-1)
    if n_seeds >= MIN_SEEDS_FOR_SHAPIRO:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tied pairs have range zero; they are masked
            shapiro = stats.shapiro(diffs, axis=-2).pvalue
        shapiro = np.where(informative, shapiro, np.inf)
        worst = np.argmin(shapiro, axis=-1)
        min_p = np.take_along_axis(shapiro, worst[..., None], axis=-1)[..., 0]
        min_p = np.where(n_checked > 0, min_p, np.nan)
    else:
        worst = np.zeros(n_checked.shape, dtype=int)
        min_p = np.full(n_checked.shape, np.nan)
    threshold = alpha / np.maximum(n_checked, 1)
    parametric = ~constant & (n_checked > 0) & (min_p >= threshold)  # NaN compares False
    return NormalityCheck(n_seeds, informative, constant, min_p, worst, threshold, parametric)


def _nonparametric(reason: str, n_methods: int, check: NormalityCheck | None = None) -> PathChoice:
    omnibus = "friedman" if n_methods >= 3 else "wilcoxon"
    p, threshold = (None, None) if check is None else (float(check.min_p), float(check.threshold))
    return PathChoice(NON_PARAMETRIC, "wilcoxon", omnibus, p, threshold, None, reason)


def choose_tests(
    wide: pd.DataFrame, pairs: Sequence[tuple[str, str]], *, alpha: float = 0.05
) -> PathChoice:
    """Measure the assumptions on ``wide`` (seeds x methods) and choose the tests.

    Args:
        wide: one row per seed, one column per method (paired by seed).
        pairs: the pairs that will be tested (the family), as (method_a, method_b).
        alpha: level of the Shapiro–Wilk (Bonferroni over the pairs) and Bartlett checks.
    """
    n_seeds, n_methods = wide.shape
    names = [f"{a} vs {b}" for a, b in pairs]
    check = check_normality(differences(wide, pairs), alpha=alpha)
    if n_seeds < MIN_SEEDS_FOR_SHAPIRO:
        return _nonparametric(
            f"with {n_seeds} seeds the normality of the paired differences cannot be checked "
            f"(Shapiro–Wilk needs at least {MIN_SEEDS_FOR_SHAPIRO})",
            n_methods,
        )
    if not check.informative.any():
        return _nonparametric("every tested pair ties on every seed", n_methods)
    if check.constant:
        constant = check.informative & (np.ptp(differences(wide, pairs), axis=0) == 0.0)
        return _nonparametric(
            f"the differences of {names[int(np.argmax(constant))]} are the same on every seed "
            "(zero variance), for which a t statistic is undefined",
            n_methods,
        )
    shapiro = (
        f"Shapiro–Wilk over {int(check.informative.sum())} pair(s), Bonferroni threshold "
        f"{float(check.threshold):.3g}"
    )
    if not check.parametric:
        return _nonparametric(
            f"the differences of {names[int(check.worst)]} do not look normal ({shapiro}: "
            f"p = {float(check.min_p):.3g})",
            n_methods,
            check,
        )
    normal = (
        f"the paired differences look normal ({shapiro}: smallest p = {float(check.min_p):.3g})"
    )
    tests = (PARAMETRIC, "paired_t")
    numbers = (float(check.min_p), float(check.threshold))
    if n_methods < 3:
        return PathChoice(*tests, "paired_t", *numbers, None, normal)
    every_pair = [(a, b) for i, a in enumerate(wide.columns) for b in wide.columns[i + 1 :]]
    every_diff = differences(wide, every_pair)
    groups = [d for d in every_diff.T if np.ptp(d) > 0.0]  # 2+: some tested pair varies
    homoscedasticity_p = float(stats.bartlett(*groups).pvalue)
    if homoscedasticity_p < alpha:
        return PathChoice(
            *tests,
            "friedman",
            *numbers,
            homoscedasticity_p,
            f"{normal}, but their variances differ between pairs (Bartlett p = "
            f"{homoscedasticity_p:.3g}): paired t-tests, each with its own pair's variance, "
            "and Friedman's omnibus, which does not assume equal variances",
        )
    return PathChoice(
        *tests,
        "rm_anova",
        *numbers,
        homoscedasticity_p,
        f"{normal} and their variances equal (Bartlett p = {homoscedasticity_p:.3g})",
    )
