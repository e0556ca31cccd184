"""The factorial interaction test finds a planted loss x optimizer interaction, finds none in
an additive design, and says why it cannot run on an incomplete design."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.factorial import factorial_interaction


def scores(interaction: float, seeds: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    seed_effect = rng.normal(0, 2, seeds)
    rows = []
    for loss_index, loss in enumerate(("clip", "sogclr")):
        for opt_index, optimizer in enumerate(("adamw", "sgd")):
            for seed in range(seeds):
                value = 50 + 3 * loss_index - 2 * opt_index + seed_effect[seed]
                value += interaction * loss_index * opt_index + rng.normal(0, 0.5)
                rows.append({"loss": loss, "optimizer": optimizer, "seed": seed, "value": value})
    return pd.DataFrame(rows)


def test_planted_interaction_is_detected():
    result = factorial_interaction(scores(interaction=4.0))
    assert result.skipped is None and result.df == 1
    assert result.p_value < 1e-6


def test_additive_design_shows_no_interaction():
    assert factorial_interaction(scores(interaction=0.0)).p_value > 0.05


def test_incomplete_design_is_skipped_with_the_reason():
    table = scores(interaction=0.0)
    table = table[~((table["loss"] == "sogclr") & (table["optimizer"] == "sgd"))]
    result = factorial_interaction(table)
    assert result.p_value is None and "3 of 2 x 2" in result.skipped
