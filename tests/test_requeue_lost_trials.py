"""A searcher restored from a snapshot older than its Optuna study (the driver was killed
right after asking a trial) hands the lost trial out again, same number and parameters,
instead of asking a new one; trials it knows keep RUNNING. Real Optuna SQLite storage, real
``save``/``restore`` of the per-cell searcher. (End to end: tests/test_cluster_s3.py.)"""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.trial import TrialState

from study.optuna_bridge import TruthfulOptunaSearch
from study.per_cell import PerCellSearch

CELL = "clip:adamw"


def space(trial: optuna.Trial) -> dict:
    trial.suggest_categorical("cell", [CELL])
    return {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True), "loss": "clip"}


def make_search(url: str) -> PerCellSearch:
    searcher = TruthfulOptunaSearch(
        space=space,
        metric="r_mean",
        mode="max",
        storage=optuna.storages.RDBStorage(url),
        study_name="run/clip/adamw",
        seed=0,
        max_epochs=2,
    )
    return PerCellSearch({CELL: searcher}, trials_per_cell=3, metric="r_mean", mode="max")


def test_restored_searcher_requeues_the_trial_its_snapshot_missed(tmp_path: Path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = make_search(url)
    known = search.suggest("ray-a")
    snapshot = tmp_path / "searcher.pkl"
    search.save(str(snapshot))
    lost = search.suggest("ray-b")  # asked after the snapshot; then the driver is killed

    restored = make_search(url)
    restored.restore(str(snapshot))
    study = optuna.load_study(study_name="run/clip/adamw", storage=url)
    assert [t.state for t in study.trials] == [TrialState.RUNNING, TrialState.WAITING]

    again = restored.suggest("ray-c")
    trials = optuna.load_study(study_name="run/clip/adamw", storage=url).trials
    assert len(trials) == 2  # no new Optuna trial for the lost one
    assert again["lr"] == lost["lr"] != known["lr"]
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.RUNNING]
    assert [t.user_attrs["ray_trial_id"] for t in trials] == ["ray-a", "ray-c"]


def test_a_trial_finished_after_the_snapshot_is_not_told_again_when_rerun(tmp_path: Path):
    """Ray reruns a trial its snapshot has RUNNING though Optuna already holds it COMPLETE:
    the rerun's results and completion leave the finished trial as it was (no error)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = make_search(url)
    search.suggest("ray-a")
    snapshot = tmp_path / "searcher.pkl"
    search.save(str(snapshot))
    for epoch, value in ((1, 40.0), (2, 50.0)):
        search.on_trial_result("ray-a", {"epoch": epoch, "r_mean": value})
    search.on_trial_complete("ray-a", {"epoch": 2, "r_mean": 50.0})  # then the driver is killed

    restored = make_search(url)
    restored.restore(str(snapshot))
    for epoch, value in ((1, 41.0), (2, 51.0)):  # the rerun (values differ to tell them apart)
        restored.on_trial_result("ray-a", {"epoch": epoch, "r_mean": value})
    restored.on_trial_complete("ray-a", {"epoch": 2, "r_mean": 51.0})
    (trial,) = optuna.load_study(study_name="run/clip/adamw", storage=url).trials
    assert (trial.state, trial.value, trial.intermediate_values) == (
        TrialState.COMPLETE,
        50.0,
        {1: 40.0, 2: 50.0},
    )
