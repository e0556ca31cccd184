"""Per-factor comparisons on a crossed loss x optimizer design, after the interaction test.

Reference protocol (hpo-and-statistics.md, C2 steps 4-5), with one deliberate change:

* no interaction (p >= alpha): each factor is compared on its main effect. A loss's score in
  seed s is its mean over the optimizers in seed s (and an optimizer's, its mean over the
  losses), so the blocks are the K seeds. C2 suggests (seed, optimizer) blocks instead, K x
  levels of them; those blocks share a seed, so a seed-specific advantage of one loss would be
  counted once per optimizer and the tests would claim more evidence than the runs hold. Only
  the seeds are independent (Demsar 2006: blocks must be independent).
* interaction (p < alpha): the best loss may depend on the optimizer, so losses are compared
  within each optimizer and optimizers within each loss, with the seeds as blocks.

Each family is one :func:`analysis.stats.compare_methods` call (tests chosen by measurement,
Holm inside the family, effect sizes, Bayesian comparison, power-floor note). Nothing runs
when the interaction was not tested (an incomplete design). The choice between the two
branches rests on the interaction test, which has little power with few seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.factorial import InteractionTest
from analysis.stats import Comparison, compare_methods

FACTORS = (("loss", "optimizer"), ("optimizer", "loss"))  # (compared, the other factor)
PLURAL = {"loss": "losses", "optimizer": "optimizers"}


@dataclass(frozen=True)
class FactorFamily:
    """One family of tests: the levels of ``factor`` compared on their mean over the other
    factor (``within`` is None) or within one level of it (``within`` = ``"optimizer=adamw"``)."""

    factor: str
    within: str | None
    comparison: Comparison
    means: pd.Series  # level -> mean of the metric over the family's blocks

    @property
    def compared(self) -> str:
        """What the family compares, in words: "losses" or "optimizers"."""
        return PLURAL[self.factor]

    @property
    def label(self) -> str:
        """For example "losses within optimizer=adamw" or "optimizers, averaged over losses"."""
        return (
            f"{self.compared} within {self.within}"
            if self.within
            else f"{self.compared}, averaged over {PLURAL[dict(FACTORS)[self.factor]]}"
        )


def _scores(rows: pd.DataFrame, factor: str, metric: str) -> pd.DataFrame:
    """``compare_methods`` input: method = the factor's level, value = its mean over the rows
    of that level and seed (over the other factor's levels when ``rows`` holds several)."""
    means = rows.groupby([factor, "seed"], as_index=False)[metric].mean()
    return pd.DataFrame(
        {
            "method": means[factor].astype(str),
            "seed": means["seed"],
            "metric": metric,
            "value": means[metric].astype(float),
        }
    )


def factor_families(
    final: pd.DataFrame,
    metric: str,
    interaction: InteractionTest,
    *,
    alpha: float = 0.05,
    mode: str = "max",
) -> list[FactorFamily]:
    """The per-factor families of ``metric``.

    Args:
        final: one row per (cell, seed) with columns ``loss, optimizer, seed, <metric>``.
        metric: the metric compared.
        interaction: the loss x optimizer test of the same rows (``analysis.factorial``).
        alpha: level of the interaction test and of every family.
        mode: "max" if higher scores are better (the Bayesian "better"), else "min".
    """
    if interaction.skipped or interaction.p_value is None:
        return []
    families = []
    for factor, other in FACTORS:
        groups: list[tuple[str | None, pd.DataFrame]] = [(None, final)]
        if interaction.p_value < alpha:
            groups = [(f"{other}={level}", rows) for level, rows in final.groupby(other)]
        for within, rows in groups:
            scores = _scores(rows, factor, metric)
            comparison = compare_methods(scores, metric, alpha=alpha, mode=mode)
            means = scores.groupby("method")["value"].mean()
            families.append(FactorFamily(factor, within, comparison, means))
    return families
