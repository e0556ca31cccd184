"""Which confirmation runs enter the report: only cells whose runs reached the full budget
for every planned seed (a paired design), the others named with their failed seeds."""

from __future__ import annotations

import pandas as pd

from study.report_command import complete_cells, describe_left_out


def runs(cell: str, epochs_by_seed: dict[int, int]) -> list[dict]:
    return [
        {"cell": cell, "seed": seed, "epoch": epoch, "r_mean": 1.0}
        for seed, last in epochs_by_seed.items()
        for epoch in range(1, last + 1)
    ]


def test_only_cells_with_every_seed_at_the_full_budget_are_kept():
    table = pd.DataFrame(
        runs("clip:adamw", {0: 3, 1: 3})
        + runs("sogclr:adamw", {0: 3, 1: 2})  # seed 1 failed in epoch 3
        + runs("siglip:lion", {0: 3})  # seed 1 never reported
        + runs("cyclip:adamw", {0: 3, 1: 3, 2: 3})
    )
    assert complete_cells(table, [0, 1], max_epochs=3) == ["clip:adamw", "cyclip:adamw"]
    assert complete_cells(table, [0], max_epochs=3) == [
        "clip:adamw",
        "cyclip:adamw",
        "siglip:lion",
        "sogclr:adamw",
    ]
    assert complete_cells(table, [0, 1], max_epochs=4) == []


def test_a_confirmation_where_every_run_failed_has_no_complete_cell():
    from study.confirm import confirmation_table

    assert complete_cells(confirmation_table([]), [0, 1], max_epochs=3) == []


def test_left_out_cells_are_named_with_their_failed_seeds():
    failed = [
        {"cell": "sogclr:adamw", "seed": 1, "reason": "loss is NaN"},
        {"cell": "sogclr:adamw", "seed": 2, "reason": "out of memory"},
    ]
    assert describe_left_out(["siglip:lion", "sogclr:adamw"], failed) == (
        "siglip:lion (did not finish); sogclr:adamw (seed 1: loss is NaN, seed 2: out of memory)"
    )
