"""Per-factor families after the interaction test: main effects (each level averaged over the
other factor within a seed, seeds as blocks) without an interaction, within each level of the
other factor with one; checked against direct scipy/statsmodels calls on the same blocks."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis.factor_tests import factor_families
from analysis.factorial import InteractionTest

NO_INTERACTION = InteractionTest(statistic=0.5, df=1, p_value=0.48)
INTERACTION = InteractionTest(statistic=30.0, df=1, p_value=1e-7)


def design(effect, seeds: int = 6, noise: float = 0.3) -> pd.DataFrame:
    """One row per (loss, optimizer, seed): value = effect(loss, optimizer) + seeded noise."""
    rng = np.random.default_rng(0)
    losses, optimizers = ("clip", "sogclr", "siglip"), ("adamw", "lion")
    rows = [
        {
            "loss": loss,
            "optimizer": optimizer,
            "seed": seed,
            "r_mean": effect(loss, optimizer) + seed + rng.normal(0, noise),
        }
        for loss, optimizer, seed in itertools.product(losses, optimizers, range(seeds))
    ]
    return pd.DataFrame(rows)


def additive(loss: str, optimizer: str) -> float:
    return {"clip": 2.0, "sogclr": 1.0, "siglip": 0.0}[loss] + (optimizer == "adamw") * 5.0


def test_without_interaction_each_factor_is_averaged_over_the_other_within_seeds():
    final = design(additive)
    families = factor_families(final, "r_mean", NO_INTERACTION)
    assert [f.label for f in families] == [
        "losses, averaged over optimizers",
        "optimizers, averaged over losses",
    ]
    losses, optimizers = families
    # the seeds are the blocks: (seed, optimizer) pairs share a seed, so they are not independent
    assert losses.comparison.omnibus.n_blocks == optimizers.comparison.omnibus.n_blocks == 6

    wide = final.pivot_table(index="seed", columns="loss", values="r_mean", aggfunc="mean")
    assert losses.comparison.test_choice.path == "parametric"  # normal noise
    pairs = losses.comparison.pairwise
    pairs_ab = zip(pairs.method_a, pairs.method_b, strict=True)
    raw = [stats.ttest_rel(wide[a], wide[b]).pvalue for a, b in pairs_ab]
    assert pairs["p_value"].tolist() == pytest.approx(raw)
    assert pairs["p_adjusted"].tolist() == pytest.approx(multipletests(raw, method="holm")[1])
    assert losses.means.to_dict() == pytest.approx(wide.mean().to_dict())
    assert losses.means.idxmax() == "clip" and optimizers.means.idxmax() == "adamw"
    assert optimizers.comparison.pairwise["significant"].all()


def test_with_interaction_each_factor_is_compared_within_the_levels_of_the_other():
    def crossed(loss: str, optimizer: str) -> float:  # the best loss flips with the optimizer
        return additive(loss, optimizer) * (1 if optimizer == "adamw" else -1)

    families = factor_families(design(crossed), "r_mean", INTERACTION)
    assert [f.label for f in families] == [
        "losses within optimizer=adamw",
        "losses within optimizer=lion",
        "optimizers within loss=clip",
        "optimizers within loss=siglip",
        "optimizers within loss=sogclr",
    ]
    assert {f.comparison.omnibus.n_blocks for f in families} == {6}
    assert families[0].means.idxmax() == "clip" and families[1].means.idxmax() == "siglip"
    # 2 optimizers: the omnibus is the single pairwise test of the path
    assert all(f.comparison.omnibus.test in ("paired_t", "wilcoxon") for f in families[2:])


def test_nothing_runs_on_an_incomplete_design():
    skipped = InteractionTest(skipped="incomplete design")
    assert factor_families(design(additive), "r_mean", skipped) == []
