"""Confirmation plans: the best full-budget trial of each cell's study is chosen (partial-budget
trials never are), and cells without one are named. The end-to-end confirmation run is in
tests/test_sweep.py, on the sweep run there."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from study.confirm import plan_confirmation

CELLS = ["clip:adamw", "sogclr:adamw", "sogclr:sgd_nesterov"]


def add(study, *, cell: str, state: TrialState, value: float, lr: float) -> None:
    study.add_trial(
        create_trial(
            state=state,
            value=None if state == TrialState.FAIL else value,
            params={"cell": cell, "lr": lr},
            distributions={
                "cell": CategoricalDistribution([cell]),
                "lr": FloatDistribution(1e-5, 1.0, log=True),
            },
            intermediate_values={1: value},
        )
    )


def cell_studies(direction: str = "maximize") -> dict[str, optuna.Study]:
    return {cell: optuna.create_study(direction=direction) for cell in CELLS}


def test_plan_takes_the_best_complete_trial_of_each_cell():
    studies = cell_studies()
    add(studies["clip:adamw"], cell="clip:adamw", state=TrialState.COMPLETE, value=50.0, lr=1e-3)
    add(studies["clip:adamw"], cell="clip:adamw", state=TrialState.COMPLETE, value=60.0, lr=2e-3)
    add(studies["clip:adamw"], cell="clip:adamw", state=TrialState.PRUNED, value=90.0, lr=3e-3)
    add(studies["sogclr:adamw"], cell="sogclr:adamw", state=TrialState.PRUNED, value=70.0, lr=4e-3)
    nesterov = studies["sogclr:sgd_nesterov"]
    add(nesterov, cell="sogclr:sgd_nesterov", state=TrialState.FAIL, value=0.0, lr=5e-3)
    plan = plan_confirmation(studies, CELLS)
    assert plan.best == {"clip:adamw": {"lr": 2e-3, "loss": "clip", "optimizer": "adamw"}}
    assert plan.missing == ["sogclr:adamw", "sogclr:sgd_nesterov"]


def test_plan_minimises_when_the_study_does_and_names_cells_without_a_study():
    studies = cell_studies("minimize")
    add(studies["clip:adamw"], cell="clip:adamw", state=TrialState.COMPLETE, value=5.0, lr=1e-3)
    add(studies["clip:adamw"], cell="clip:adamw", state=TrialState.COMPLETE, value=3.0, lr=2e-3)
    plan = plan_confirmation(studies, ["clip:adamw", "siglip:lion"])
    assert plan.best["clip:adamw"]["lr"] == 2e-3
    assert plan.missing == ["siglip:lion"]
