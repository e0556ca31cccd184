"""The loss x optimizer factorial: does the best loss depend on the optimizer?

A linear mixed model with the seed as group (random intercept; statsmodels ``mixedlm``),
fitted by maximum likelihood with and without the loss:optimizer interaction; the interaction
is tested by the likelihood ratio (chi-square, df = difference in fixed effects). It needs a
crossed design: every loss of the comparison with every optimizer of it, and at least 2 of
each; otherwise it says why it did not run. :func:`crossed_subset` finds the largest crossed
part of a design that is not crossed (the seed documents compare 12 chosen cells, of which
4 losses x 2 optimizers are crossed).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats

FULL = "value ~ C(loss) * C(optimizer)"
ADDITIVE = "value ~ C(loss) + C(optimizer)"


@dataclass(frozen=True)
class InteractionTest:
    """Likelihood-ratio test of the interaction; ``skipped`` says why when it did not run."""

    statistic: float | None = None
    df: int | None = None
    p_value: float | None = None
    skipped: str | None = None
    losses: tuple[str, ...] = ()  # the design tested
    optimizers: tuple[str, ...] = ()


def factorial_interaction(scores: pd.DataFrame) -> InteractionTest:
    """``scores``: columns ``loss, optimizer, seed, value`` (one row per cell and seed)."""
    losses, optimizers = scores["loss"].unique(), scores["optimizer"].unique()
    if len(losses) < 2 or len(optimizers) < 2:
        return InteractionTest(skipped="needs at least 2 losses and 2 optimizers")
    cells = set(zip(scores["loss"], scores["optimizer"], strict=True))
    if len(cells) < len(losses) * len(optimizers):
        return InteractionTest(
            skipped=f"incomplete design: {len(cells)} of {len(losses)} x {len(optimizers)} "
            "loss/optimizer cells were confirmed"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # boundary fits of the seed variance are expected
        full = smf.mixedlm(FULL, scores, groups=scores["seed"]).fit(reml=False)
        additive = smf.mixedlm(ADDITIVE, scores, groups=scores["seed"]).fit(reml=False)
    df = len(full.fe_params) - len(additive.fe_params)
    statistic = max(0.0, 2 * (full.llf - additive.llf))
    p_value = float(stats.chi2.sf(statistic, df))
    return InteractionTest(
        statistic, df, p_value, losses=tuple(sorted(losses)), optimizers=tuple(sorted(optimizers))
    )


def crossed_subset(scores: pd.DataFrame) -> pd.DataFrame:
    """The rows of the largest fully crossed losses x optimizers part of ``scores`` (columns
    ``loss, optimizer``): the most cells, at least 2 x 2; ties go to more optimizers, then to
    the first in name order. Empty when no 2 x 2 part exists."""
    cells = set(zip(scores["loss"], scores["optimizer"], strict=True))
    losses, optimizers = sorted(scores["loss"].unique()), sorted(scores["optimizer"].unique())
    best: tuple[list[str], tuple[str, ...]] = ([], ())
    for k in range(len(optimizers), 1, -1):
        for chosen in itertools.combinations(optimizers, k):
            crossed = [loss for loss in losses if all((loss, o) in cells for o in chosen)]
            if len(crossed) >= 2 and len(crossed) * k > len(best[0]) * len(best[1]):
                best = (crossed, chosen)
    return scores[scores["loss"].isin(best[0]) & scores["optimizer"].isin(best[1])]
