"""Confirmation plans: the best full-budget trial of each cell is chosen (partial-budget
trials never are), and cells without one are named. The end-to-end confirmation run is in
tests/test_sweep.py, on the sweep run there."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from study.confirm import plan_confirmation

LR = {"lr": FloatDistribution(1e-5, 1.0, log=True)}


def add(study, *, cell: str, state: TrialState, value: float, lr: float) -> None:
    loss, optimizer = cell.split(":")
    study.add_trial(
        create_trial(
            state=state,
            value=None if state == TrialState.FAIL else value,
            params={"lr": lr},
            distributions=LR,
            user_attrs={"loss": loss, "optimizer": optimizer},
            intermediate_values={1: value},
        )
    )


def test_plan_takes_the_best_complete_trial_of_each_cell():
    study = optuna.create_study(direction="maximize")
    add(study, cell="clip:adamw", state=TrialState.COMPLETE, value=50.0, lr=1e-3)
    add(study, cell="clip:adamw", state=TrialState.COMPLETE, value=60.0, lr=2e-3)
    add(study, cell="clip:adamw", state=TrialState.PRUNED, value=90.0, lr=3e-3)
    add(study, cell="sogclr:adamw", state=TrialState.PRUNED, value=70.0, lr=4e-3)
    add(study, cell="sogclr:sgd_nesterov", state=TrialState.FAIL, value=0.0, lr=5e-3)
    plan = plan_confirmation(study)
    assert plan.best == {"clip:adamw": {"lr": 2e-3, "loss": "clip", "optimizer": "adamw"}}
    assert plan.missing == ["sogclr:adamw", "sogclr:sgd_nesterov"]


def test_plan_minimises_when_the_study_does():
    study = optuna.create_study(direction="minimize")
    add(study, cell="clip:adamw", state=TrialState.COMPLETE, value=5.0, lr=1e-3)
    add(study, cell="clip:adamw", state=TrialState.COMPLETE, value=3.0, lr=2e-3)
    assert plan_confirmation(study, ["clip:adamw", "siglip:lion"]).best["clip:adamw"]["lr"] == 2e-3
    assert plan_confirmation(study, ["siglip:lion"]).missing == ["siglip:lion"]
