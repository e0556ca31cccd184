"""The factorial interaction test finds a planted loss x optimizer interaction, finds none in
an additive design, and says why it cannot run on an incomplete design; the largest crossed
part of a design that is not crossed is found."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.factorial import crossed_subset, factorial_interaction


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
    assert (result.losses, result.optimizers) == (("clip", "sogclr"), ("adamw", "sgd"))
    assert result.p_value < 1e-6


def test_additive_design_shows_no_interaction():
    assert factorial_interaction(scores(interaction=0.0)).p_value > 0.05


def test_incomplete_design_is_skipped_with_the_reason():
    table = scores(interaction=0.0)
    table = table[~((table["loss"] == "sogclr") & (table["optimizer"] == "sgd"))]
    result = factorial_interaction(table)
    assert result.p_value is None and "3 of 2 x 2" in result.skipped


def cells_of(rows: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(rows["loss"], rows["optimizer"], strict=True))


def design(cells: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"loss": c.split(":")[0], "optimizer": c.split(":")[1], "seed": 0} for c in cells]
    )


def test_the_seed_documents_cells_have_a_4_x_2_crossed_part():
    seeds_toml = [  # configs/seeds.toml
        "clip:adamw", "sogclr:sgd_nesterov", "cyclip:adamw", "isogclr_tempnet:adamw",
        "sogclr:adamw", "sogclr:adamp", "isogclr:adamw", "isogclr:adamp",
        "amclr:adamw", "amclr:adamp", "xamclr:adamw", "xamclr:adamp",
    ]  # fmt: skip
    crossed = crossed_subset(design(seeds_toml))
    losses, optimizers = ("amclr", "isogclr", "sogclr", "xamclr"), ("adamp", "adamw")
    assert cells_of(crossed) == {(loss, o) for loss in losses for o in optimizers}


def test_a_crossed_design_is_its_own_crossed_part_and_a_chain_has_none():
    full = scores(interaction=0.0)
    assert crossed_subset(full).equals(full)
    assert crossed_subset(design(["a:x", "b:x", "b:y", "c:y"])).empty
