"""``study.per_cell``: an equal trial budget and separate ASHA rungs per (loss, optimizer) cell.

No Ray cluster is started; the searchers are real ``TruthfulOptunaSearch`` instances over real
Optuna storages, the schedulers real ``ASHAScheduler`` instances fed minimal trial objects
(ASHA reads only ``trial_id``; ``PerCellASHA`` also reads ``config["cell"]``). Proven here:

* ``PerCellSearch`` hands each suggestion to the cell with the fewest trials so far (round
  robin over the demo space's 4 cells), the config comes from that cell's own Optuna study
  (``cell``, ``loss`` and ``optimizer`` match), and after ``trials_per_cell`` x cells
  suggestions it answers ``Searcher.FINISHED``.
* Results and completions reach the trial's own cell study: a trial completed at the full
  budget (epoch 2) is COMPLETE there, one stopped at epoch 1 is PRUNED, the other cells'
  trials are untouched.
* ``save``/``restore`` into a fresh ``PerCellSearch`` keeps which trial belongs to which cell
  and the counts: the next suggestion continues the round robin (not from the first cell), and
  a restored trial's completion still reaches its cell's study.
* ``PerCellASHA`` compares a trial only with its own cell: a weak cell's first trial at a rung
  continues although a strong cell's trials reached that rung with far higher values, while a
  weaker trial of the strong cell (and of the weak cell) is stopped. A single ``ASHAScheduler``
  with the same settings stops the weak cell's trial (the contrast: the check can fail).
* ``PerCellASHA.on_trial_complete`` and ``on_trial_remove`` act on the trial's own cell.
"""

from __future__ import annotations

import types
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

from search_spaces import SearchSpace
from study.optuna_bridge import TruthfulOptunaSearch
from study.per_cell import PerCellASHA, PerCellSearch
from study.studies import cell_study_name

RUN = "t"
DEMO = SearchSpace("demo", {})
CELLS = ["clip:adamw", "clip:sgd_nesterov", "sogclr:adamw", "sogclr:sgd_nesterov"]
CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP
ASHA_SETTINGS = {
    "metric": "r_mean",
    "mode": "max",
    "time_attr": "epoch",
    "max_t": 8,
    "grace_period": 2,
    "reduction_factor": 2,
}
STRONG, WEAK = "clip:adamw", "sogclr:sgd_nesterov"


# --- PerCellSearch -------------------------------------------------------------------------


def per_cell_search(storage: optuna.storages.BaseStorage, trials_per_cell: int) -> PerCellSearch:
    """As the runner builds it: one TruthfulOptunaSearch per demo cell, study ``t/loss/opt``."""
    searchers = {
        cell: TruthfulOptunaSearch(
            space=DEMO.for_cell(cell),
            metric="r_mean",
            mode="max",
            storage=storage,
            study_name=cell_study_name(RUN, cell),
            seed=0,
            max_epochs=2,
        )
        for cell in CELLS
    }
    return PerCellSearch(searchers, trials_per_cell, "r_mean", "max")


def cell_trials(storage: optuna.storages.BaseStorage, cell: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=cell_study_name(RUN, cell), storage=storage).trials


def suggest_cells(search: PerCellSearch, trial_ids: list[str]) -> list[str]:
    """Suggest each trial; check its config is of its cell; return the cells in order."""
    cells = []
    for trial_id in trial_ids:
        config = search.suggest(trial_id)
        cell = search.cell_of_trial[trial_id]
        loss, optimizer = cell.split(":")
        assert (config["cell"], config["loss"], config["optimizer"]) == (cell, loss, optimizer)
        cells.append(cell)
    return cells


def run_trial(search: PerCellSearch, trial_id: str, values: list[float]) -> None:
    """Report ``values`` at epochs 1, 2, ... and complete the trial at the last one."""
    for epoch, value in enumerate(values, start=1):
        search.on_trial_result(trial_id, {"epoch": epoch, "r_mean": value})
    search.on_trial_complete(trial_id, result={"epoch": len(values), "r_mean": values[-1]})


def test_demo_space_has_the_four_cells():
    assert DEMO.cells() == CELLS


def test_round_robin_then_finished():
    storage = optuna.storages.InMemoryStorage()
    search = per_cell_search(storage, trials_per_cell=2)
    ids = [f"t{i}" for i in range(8)]
    assert suggest_cells(search, ids) == CELLS * 2
    assert search.suggest("t8") == Searcher.FINISHED
    assert "t8" not in search.cell_of_trial
    for cell in CELLS:  # each suggestion was asked of its own cell's study
        trials = cell_trials(storage, cell)
        assert [t.user_attrs["ray_trial_id"] for t in trials] == [
            i for i in ids if search.cell_of_trial[i] == cell
        ]
        assert all(t.params["cell"] == cell for t in trials)


def test_results_reach_the_trials_own_cell_study():
    storage = optuna.storages.InMemoryStorage()
    search = per_cell_search(storage, trials_per_cell=1)
    ids = ["full", "other1", "other2", "stopped"]
    assert suggest_cells(search, ids) == CELLS
    run_trial(search, "full", [10.0, 20.0])  # the full budget: max_epochs = 2
    run_trial(search, "stopped", [5.0])  # stopped by the scheduler after epoch 1

    (full,) = cell_trials(storage, CELLS[0])
    assert (full.state, full.value, full.intermediate_values) == (
        TrialState.COMPLETE,
        20.0,
        {1: 10.0, 2: 20.0},
    )
    (stopped,) = cell_trials(storage, CELLS[3])
    assert (stopped.state, stopped.intermediate_values) == (TrialState.PRUNED, {1: 5.0})
    assert stopped.user_attrs["epochs_completed"] == 1
    for cell in CELLS[1:3]:
        (untouched,) = cell_trials(storage, cell)
        assert (untouched.state, untouched.intermediate_values) == (TrialState.RUNNING, {})


def test_save_restore_continues_the_round_robin(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = per_cell_search(optuna.storages.RDBStorage(url), trials_per_cell=2)
    assert suggest_cells(search, ["t0", "t1", "t2", "t3", "t4"]) == [*CELLS, CELLS[0]]
    run_trial(search, "t0", [1.0, 2.0])
    checkpoint = tmp_path / "searcher.pkl"
    search.save(str(checkpoint))

    restored = per_cell_search(optuna.storages.RDBStorage(url), trials_per_cell=2)
    restored.restore(str(checkpoint))
    assert restored.cell_of_trial == search.cell_of_trial
    assert Counter(restored.cell_of_trial.values()) == {CELLS[0]: 2, **dict.fromkeys(CELLS[1:], 1)}
    assert suggest_cells(restored, ["t5", "t6", "t7"]) == CELLS[1:]
    assert restored.suggest("t8") == Searcher.FINISHED

    run_trial(restored, "t4", [3.0, 4.0])  # suggested before the save, completed after
    storage = optuna.storages.RDBStorage(url)
    assert [(t.user_attrs["ray_trial_id"], t.state) for t in cell_trials(storage, CELLS[0])] == [
        ("t0", TrialState.COMPLETE),
        ("t4", TrialState.COMPLETE),
    ]
    for cell in CELLS[1:]:
        assert len(cell_trials(storage, cell)) == 2


# --- PerCellASHA ---------------------------------------------------------------------------


def trial(trial_id: str, cell: str) -> types.SimpleNamespace:
    """All of a Ray trial that ASHA and PerCellASHA read."""
    return types.SimpleNamespace(trial_id=trial_id, config={"cell": cell})


def added(scheduler: TrialScheduler, *trials: types.SimpleNamespace) -> dict:
    for t in trials:
        scheduler.on_trial_add(None, t)
    return {t.trial_id: t for t in trials}


def decide(scheduler: TrialScheduler, t: types.SimpleNamespace, epoch: int, value: float) -> str:
    return scheduler.on_trial_result(None, t, {"epoch": epoch, "r_mean": value})


def rung_two_decisions(scheduler: TrialScheduler) -> dict[str, str]:
    """Trials reaching epoch 2 (the first rung) in this order: two strong-cell trials with
    high values, the weak cell's first trial with a low one, then a weaker trial of each."""
    trials = added(
        scheduler,
        trial("strong1", STRONG),
        trial("strong2", STRONG),
        trial("weak1", WEAK),
        trial("strong3", STRONG),
        trial("weak2", WEAK),
    )
    values = {"strong1": 60.0, "strong2": 70.0, "weak1": 10.0, "strong3": 50.0, "weak2": 5.0}
    return {name: decide(scheduler, trials[name], 2, value) for name, value in values.items()}


def test_per_cell_asha_compares_only_within_a_cell():
    assert rung_two_decisions(PerCellASHA(**ASHA_SETTINGS)) == {
        "strong1": CONTINUE,
        "strong2": CONTINUE,
        "weak1": CONTINUE,  # first of its cell at the rung, although far below 60 and 70
        "strong3": STOP,  # below its own cell's cutoff (65)
        "weak2": STOP,  # below its own cell's cutoff (10)
    }


def test_a_single_asha_would_stop_the_weak_cell():
    """The contrast: one ASHA over all cells stops the weak cell's first trial."""
    assert rung_two_decisions(ASHAScheduler(**ASHA_SETTINGS))["weak1"] == STOP


def test_on_trial_complete_records_in_the_trials_own_cell():
    scheduler = PerCellASHA(**ASHA_SETTINGS)
    trials = added(scheduler, trial("weak1", WEAK), trial("weak2", WEAK), trial("strong1", STRONG))
    scheduler.on_trial_complete(None, trials["weak1"], {"epoch": 4, "r_mean": 30.0})
    assert decide(scheduler, trials["weak2"], 4, 20.0) == STOP  # below weak1's 30 at rung 4
    assert decide(scheduler, trials["strong1"], 4, 20.0) == CONTINUE  # its cell's rung is empty


def test_on_trial_remove_forgets_the_trial_in_its_own_cell():
    scheduler = PerCellASHA(**ASHA_SETTINGS)
    trials = added(scheduler, trial("weak1", WEAK), trial("strong1", STRONG))
    with pytest.raises(KeyError):  # the contrast: the other cell does not know the trial
        scheduler.by_cell[STRONG].on_trial_remove(None, trials["weak1"])
    scheduler.on_trial_remove(None, trials["weak1"])
    with pytest.raises(KeyError):  # removed from its cell's ASHA: no bracket any more
        decide(scheduler, trials["weak1"], 2, 1.0)
    assert decide(scheduler, trials["strong1"], 2, 1.0) == CONTINUE
