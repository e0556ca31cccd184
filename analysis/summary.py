"""The answer a report gives first: one ranked table of the cells and a few quotable sentences.

Ranked table (one row per cell, best first): mean of the primary metric over seeds with its
95% t-interval (``scipy.stats.ttest_1samp(...).confidence_interval``; the interval of one
cell's mean, the pairing is in the pairwise tests), the rank of the mean, whether the cell can
be told apart from the best (Holm-corrected test of the all-pairs family: "best", "not
distinguishable from the best" or "below the best" / "above the best" for ``mode="min"``) and
P(best) from the Bayesian comparison.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.power import TTestPower

from analysis.stats import TEST_NAMES, Comparison

__all__ = ["RANKED_COLUMNS", "ranked_table", "summary_sentences"]

RANKED_COLUMNS = ("rank", "cell", "mean", "ci_low", "ci_high", "group", "p_best")
BEST, TIED, WORSE = "best", "not distinguishable from the best", "worse than the best"


def _mean_ci(values: np.ndarray) -> tuple[float, float]:
    if np.ptp(values) == 0.0:
        return float(values[0]), float(values[0])
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    return float(ci.low), float(ci.high)


def ranked_table(scores: pd.DataFrame, comparison: Comparison) -> pd.DataFrame:
    """``RANKED_COLUMNS`` for the methods of ``comparison`` (an all-pairs family) on its metric;
    ``scores`` is the tidy table it was computed from."""
    rows = scores[scores["metric"] == comparison.metric]
    values = {m: rows.loc[rows["method"] == m, "value"].to_numpy(float) for m in comparison.methods}
    means = pd.Series({m: v.mean() for m, v in values.items()})
    order = means.sort_values(ascending=comparison.mode == "min").index
    best = order[0]
    pairwise = comparison.pairwise
    called = {frozenset((r.method_a, r.method_b)) for r in pairwise.itertuples() if r.significant}
    table = []
    for rank, method in enumerate(order, start=1):
        group = BEST if method == best else (WORSE if frozenset((method, best)) in called else TIED)
        low, high = _mean_ci(values[method])
        p_best = np.nan if comparison.p_best is None else float(comparison.p_best[method])
        table.append((rank, method, float(means[method]), low, high, group, p_best))
    return pd.DataFrame(table, columns=list(RANKED_COLUMNS))


def _pair_row(comparison: Comparison, a: str, b: str) -> tuple[pd.Series, int]:
    """The pairwise row of ``a`` and ``b`` and the sign that makes its numbers read a - b."""
    rows = comparison.pairwise
    hit = rows[(rows["method_a"] == a) & (rows["method_b"] == b)]
    if len(hit):
        return hit.iloc[0], 1
    return rows[(rows["method_a"] == b) & (rows["method_b"] == a)].iloc[0], -1


def summary_sentences(comparison: Comparison, ranked: pd.DataFrame) -> list[str]:
    """Three to five sentences a reader can quote: the best cell, the test path and why, what
    is better than what, the Bayesian reading, and what the seeds can and cannot claim."""
    metric, alpha = comparison.metric, comparison.alpha
    n_seeds, m = len(comparison.seeds), comparison.n_tests
    best = ranked.iloc[0]
    choice = comparison.test_choice
    sentences = [
        f"With {n_seeds} seeds per cell, {best.cell} has the best mean {metric}: "
        f"{best['mean']:.3g} (95% CI {best.ci_low:.3g} to {best.ci_high:.3g}) of "
        f"{len(ranked)} cells.",
        f"Test path: {choice.path} ({TEST_NAMES[choice.pairwise_test]}s with Holm over {m} "
        f"pairs, {TEST_NAMES[comparison.omnibus.test]} omnibus p = "
        f"{comparison.omnibus.p_value:.3g}), because {choice.reason}.",
    ]
    worse = ranked[ranked["group"] == WORSE]
    tied = ranked[ranked["group"] == TIED]
    if len(worse):
        last = worse.iloc[-1]
        row, sign = _pair_row(comparison, best.cell, last.cell)
        low, high = sorted((sign * row.ci_low, sign * row.ci_high))
        sentences.append(
            f"{best.cell} is significantly better than {', '.join(worse['cell'])} (Holm "
            f"alpha {alpha:g}); the largest gap, to {last.cell}, is {sign * row.effect_size:+.3g} "
            f"{metric} points (95% CI {low:+.3g} to {high:+.3g}, adjusted p = "
            f"{row.p_adjusted:.2g})"
            + (f"; {', '.join(tied['cell'])} cannot be told apart from it." if len(tied) else ".")
        )
    else:
        sentences.append(f"No cell can be told apart from {best.cell} at Holm alpha {alpha:g}.")
    if comparison.p_best is not None:
        sentences.append(
            f"Bayesian view (signed-rank test, ROPE ±{comparison.rope:g} {metric} points): "
            f"P({best.cell} is best) = {best.p_best:.2f}"
            + "".join(
                f"; P(equivalent to {r.cell}) = "
                f"{_pair_row(comparison, best.cell, r.cell)[0].p_equivalent:.2f}"
                for r in tied.itertuples()
            )
            + "."
        )
    sentences.append(_claim(comparison, n_seeds, m))
    return sentences


def _claim(comparison: Comparison, n_seeds: int, m: int) -> str:
    """What the design can and cannot claim, from its power (statsmodels ``TTestPower``)."""
    scope = (
        "These claims hold for this data, budget and tuning, on the confirmation runs only; "
        "'not distinguishable' is not evidence of equivalence."
    )
    if comparison.test_choice.pairwise_test == "wilcoxon":
        floor = [n for n in comparison.notes if n.startswith("Power floor")]
        if floor:
            return f"{scope} With {n_seeds} seeds the Wilcoxon path can call no difference at all."
        return scope
    if n_seeds < 3:
        return scope
    d = TTestPower().solve_power(nobs=n_seeds, alpha=comparison.alpha / m, power=0.8)
    return (
        f"{scope} With {n_seeds} seeds a gap is found with 80% power only if it is at least "
        f"{d:.2g} standard deviations of its paired differences."
    )
