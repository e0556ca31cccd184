"""The tests of each path, on scores paired by seed (``analysis.assumptions`` picks the path).

Pairwise (two-sided):

* ``"paired_t"``: paired t-test: a one-sample t-test of the per-seed differences
  (``scipy.stats.ttest_1samp``, the same numbers as ``scipy.stats.ttest_rel``).
* ``"wilcoxon"``: Wilcoxon signed-rank (``scipy.stats.wilcoxon``, ``zero_method="wilcox"``:
  seeds where the two methods tie exactly are dropped, as in Wilcoxon's original test;
  ``method="auto"``: the exact null distribution for small samples without ties, else the
  normal approximation).

Omnibus over 3+ methods, seeds as blocks:

* ``"rm_anova"``: one-way repeated-measures ANOVA (``statsmodels...AnovaRM``), the F test.
* ``"friedman"``: Friedman's test (``scipy.stats.friedmanchisquare``).

Where the methods tie on every seed (every block) the tests are undefined; p = 1 there. The
pairwise tests run on a batch of studies at once (``analysis.calibration``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.anova import AnovaRM

__all__ = ["ZERO_METHOD", "omnibus_test", "pairwise_tests"]

ZERO_METHOD = "wilcox"


def pairwise_tests(diffs: np.ndarray, test: str) -> tuple[np.ndarray, np.ndarray]:
    """(statistic, p) of the two-sided paired ``test`` on every pair's per-seed differences.

    ``diffs`` has shape (..., seeds, pairs) (any leading batch axes); the results have shape
    (..., pairs). A pair that ties on every seed gets statistic 0 and p = 1.
    """
    if test not in ("paired_t", "wilcoxon"):
        raise ValueError(f"unknown pairwise test {test!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tied pairs: overwritten below
        if test == "paired_t":
            res = stats.ttest_1samp(diffs, 0.0, axis=-2)  # = scipy.stats.ttest_rel(a, b)
        else:
            res = stats.wilcoxon(diffs, zero_method=ZERO_METHOD, alternative="two-sided", axis=-2)
    tied = np.all(diffs == 0.0, axis=-2)
    statistic = np.where(tied, 0.0, np.asarray(res.statistic, dtype=float))
    return statistic, np.where(tied, 1.0, np.asarray(res.pvalue, dtype=float))


def omnibus_test(wide: pd.DataFrame, test: str) -> tuple[float, float]:
    """(statistic, p) of the omnibus ``test`` over the columns of ``wide`` (seeds x methods,
    3+ methods); p = 1 if every seed's block is tied."""
    if (wide.nunique(axis=1) == 1).all():
        return 0.0, 1.0
    if test == "friedman":
        res = stats.friedmanchisquare(*(wide[m].to_numpy() for m in wide.columns))
        return float(res.statistic), float(res.pvalue)
    if test == "rm_anova":
        long = wide.rename_axis(index="seed", columns="method").stack().rename("value")
        table = AnovaRM(long.reset_index(), "value", "seed", within=["method"]).fit()
        row = table.anova_table.iloc[0]
        return float(row["F Value"]), float(row["Pr > F"])
    raise ValueError(f"unknown omnibus test {test!r}")
