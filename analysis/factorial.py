"""The loss x optimizer factorial: does the best loss depend on the optimizer?

A linear mixed model with the seed as group (random intercept; statsmodels ``mixedlm``),
fitted by maximum likelihood with and without the loss:optimizer interaction; the interaction
is tested by the likelihood ratio (chi-square, df = difference in fixed effects). It needs a
crossed design: every loss of the comparison with every optimizer of it, and at least 2 of
each; otherwise it says why it did not run.
"""

from __future__ import annotations

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
    return InteractionTest(statistic, df, float(stats.chi2.sf(statistic, df)))
