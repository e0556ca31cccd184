"""Per-factor comparisons on a crossed loss x optimizer design, after the interaction test.

Reference protocol (hpo-and-statistics.md, C2 steps 4-5):

* no interaction (p >= alpha): each factor is compared pooled over the other. Losses are
  blocked by (seed, optimizer), optimizers by (seed, loss): every block compares the levels
  under the same seed and the same level of the other factor, and pooling multiplies the
  blocks (more power than per-cell tests).
* interaction (p < alpha): the best loss may depend on the optimizer, so losses are compared
  within each optimizer and optimizers within each loss, with the seeds as blocks.

Each family is one :func:`analysis.stats.compare_methods` call (Friedman or Wilcoxon omnibus,
pairwise Wilcoxon with Holm inside the family, effect sizes, power-floor note). Nothing runs
when the interaction was not tested (an incomplete design).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.factorial import InteractionTest
from analysis.stats import Comparison, compare_methods

FACTORS = (("loss", "optimizer"), ("optimizer", "loss"))  # (compared, the other factor)


@dataclass(frozen=True)
class FactorFamily:
    """One family of tests: the levels of ``factor`` compared, pooled over the other factor
    (``within`` is None) or within one level of it (``within`` = ``"optimizer=adamw"``)."""

    factor: str
    within: str | None
    comparison: Comparison
    means: pd.Series  # level -> mean of the metric over the family's blocks

    @property
    def compared(self) -> str:
        """What the family compares, in words: "losses" or "optimizers"."""
        return {"loss": "losses", "optimizer": "optimizers"}[self.factor]

    @property
    def label(self) -> str:
        """For example "losses within optimizer=adamw" or "optimizers, pooled"."""
        return (
            f"{self.compared} within {self.within}" if self.within else f"{self.compared}, pooled"
        )


def _blocked_scores(
    rows: pd.DataFrame, factor: str, blocks: list[str], metric: str
) -> pd.DataFrame:
    """``compare_methods`` input: method = the factor's level, seed = the block label."""
    return pd.DataFrame(
        {
            "method": rows[factor].astype(str),
            "seed": rows[blocks].astype(str).agg("/".join, axis=1),
            "metric": metric,
            "value": rows[metric].astype(float),
        }
    )


def factor_families(
    final: pd.DataFrame, metric: str, interaction: InteractionTest, *, alpha: float = 0.05
) -> list[FactorFamily]:
    """The per-factor families of ``metric``.

    Args:
        final: one row per (cell, seed) with columns ``loss, optimizer, seed, <metric>``.
        metric: the metric compared.
        interaction: the loss x optimizer test of the same rows (``analysis.factorial``).
        alpha: level of the interaction test and of every family.
    """
    if interaction.skipped:
        return []
    families = []
    for factor, other in FACTORS:
        if interaction.p_value < alpha:
            groups = [(f"{other}={level}", rows, ["seed"]) for level, rows in final.groupby(other)]
        else:
            groups = [(None, final, ["seed", other])]
        for within, rows, blocks in groups:
            scores = _blocked_scores(rows, factor, blocks, metric)
            comparison = compare_methods(scores, metric, alpha=alpha)
            means = scores.groupby("method")["value"].mean()
            families.append(FactorFamily(factor, within, comparison, means))
    return families
