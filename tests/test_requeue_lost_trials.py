"""A sweep resumed after a kill -9 of its driver starts from two snapshots, Ray's (which
trials exist) and the searcher's (which Optuna trial each runs), that may be from different
moments: Ray uploads them to remote storage as separate files. Whichever is newer, every
Optuna trial ends up with exactly one Ray trial: one Ray's snapshot lacks is handed out again
(same number and parameters), one the searcher's snapshot lacks keeps its Ray trial, and no
new trial is asked for either. Real Optuna SQLite storage, real ``save``/``restore`` of the
per-cell searcher. (End to end: tests/test_cluster_s3.py.)"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.search import Searcher

from study.optuna_bridge import TruthfulOptunaSearch, requeue_lost_trials
from study.per_cell import PerCellConcurrencyLimiter, PerCellSearch

CELL = "clip:adamw"
RUN = "run"
STUDY = "run/clip/adamw"


def space(trial: optuna.Trial) -> dict:
    trial.suggest_categorical("cell", [CELL])
    return {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True), "loss": "clip"}


def make_search(url: str) -> PerCellSearch:
    searcher = TruthfulOptunaSearch(
        space=space,
        metric="r_mean",
        mode="max",
        storage=optuna.storages.RDBStorage(url),
        study_name=STUDY,
        seed=0,
        max_epochs=2,
    )
    return PerCellSearch({CELL: searcher}, trials_per_cell=3, metric="r_mean", mode="max")


@pytest.fixture
def url(tmp_path: Path) -> str:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def resume(url: str, snapshot: Path, ray_trial_ids: set[str]) -> PerCellSearch:
    """As ``clipstudy sweep --resume`` does: requeue against Ray's snapshot, then restore."""
    requeue_lost_trials(optuna.storages.RDBStorage(url), RUN, ray_trial_ids)
    restored = make_search(url)
    restored.restore(str(snapshot))
    return restored


def stored(url: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=STUDY, storage=url).trials


def test_a_trial_rays_snapshot_missed_is_handed_out_again(url: str, tmp_path: Path):
    search = make_search(url)
    known = search.suggest("ray-a")
    snapshot = tmp_path / "searcher.pkl"
    search.save(str(snapshot))
    lost = search.suggest("ray-b")  # asked after both snapshots; then the driver is killed

    restored = resume(url, snapshot, {"ray-a"})
    assert [t.state for t in stored(url)] == [TrialState.RUNNING, TrialState.WAITING]

    again = restored.suggest("ray-c")
    trials = stored(url)
    assert len(trials) == 2  # no new Optuna trial for the lost one
    assert again["lr"] == lost["lr"] != known["lr"]
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.RUNNING]
    assert [t.user_attrs["ray_trial_id"] for t in trials] == ["ray-a", "ray-c"]


def test_a_trial_only_the_searchers_snapshot_has_is_handed_out_again(url: str, tmp_path: Path):
    """The searcher's snapshot reached storage, Ray's newer one did not: ray-b exists for
    the searcher only, and its Optuna trial goes to a new Ray trial within the budget."""
    search = make_search(url)
    search.suggest("ray-a")
    lost = search.suggest("ray-b")
    snapshot = tmp_path / "searcher.pkl"
    search.save(str(snapshot))

    restored = resume(url, snapshot, {"ray-a"})
    assert "ray-b" not in restored.cell_of_trial
    assert restored.suggest("ray-c")["lr"] == lost["lr"]
    restored.suggest("ray-d")
    assert restored.suggest("ray-e") == Searcher.FINISHED
    trials = stored(url)
    assert [t.user_attrs["ray_trial_id"] for t in trials] == ["ray-a", "ray-c", "ray-d"]


def test_a_trial_only_rays_snapshot_has_keeps_its_optuna_trial(url: str, tmp_path: Path):
    """Ray's snapshot reached storage, the searcher's newer one did not: Ray reruns ray-b,
    and its results go to the Optuna trial it was asked for (before the fix: KeyError)."""
    search = make_search(url)
    search.suggest("ray-a")
    snapshot = tmp_path / "searcher.pkl"
    search.save(str(snapshot))
    search.suggest("ray-b")
    search.on_trial_result("ray-b", {"epoch": 1, "r_mean": 30.0})

    restored = resume(url, snapshot, {"ray-a", "ray-b"})
    for epoch, value in ((1, 30.0), (2, 45.0)):  # the rerun from its start
        restored.on_trial_result("ray-b", {"epoch": epoch, "r_mean": value})
    restored.on_trial_complete("ray-b", {"epoch": 2, "r_mean": 45.0})
    restored.suggest("ray-c")
    assert restored.suggest("ray-d") == Searcher.FINISHED  # ray-b counts against the budget
    trials = stored(url)
    assert [t.user_attrs["ray_trial_id"] for t in trials] == ["ray-a", "ray-b", "ray-c"]
    assert (trials[1].state, trials[1].intermediate_values) == (
        TrialState.COMPLETE,
        {1: 30.0, 2: 45.0},
    )


def test_a_trial_finished_after_the_snapshot_is_not_told_again_when_rerun(url: str, tmp_path: Path):
    """Ray reruns a trial its snapshot has RUNNING though Optuna already holds it COMPLETE:
    the rerun's results and completion leave the finished trial as it was (no error)."""
    search = make_search(url)
    search.suggest("ray-a")
    snapshot = tmp_path / "searcher.pkl"
    search.save(str(snapshot))
    for epoch, value in ((1, 40.0), (2, 50.0)):
        search.on_trial_result("ray-a", {"epoch": epoch, "r_mean": value})
    search.on_trial_complete("ray-a", {"epoch": 2, "r_mean": 50.0})  # then the driver is killed

    restored = resume(url, snapshot, {"ray-a"})
    for epoch, value in ((1, 41.0), (2, 51.0)):  # the rerun (values differ to tell them apart)
        restored.on_trial_result("ray-a", {"epoch": epoch, "r_mean": value})
    restored.on_trial_complete("ray-a", {"epoch": 2, "r_mean": 51.0})
    (trial,) = stored(url)
    assert (trial.state, trial.value, trial.intermediate_values) == (
        TrialState.COMPLETE,
        50.0,
        {1: 40.0, 2: 50.0},
    )


def test_a_searcher_ray_did_not_restore_takes_its_trials_from_the_study(url: str):
    """A kill before the searcher's first snapshot reached storage: Ray restores its trials
    and a searcher as built when the sweep started, which must learn the cell's trials from
    the study before it suggests (or results of Ray's trials come)."""
    search = make_search(url)
    search.suggest("ray-a")
    search.suggest("ray-b")

    requeue_lost_trials(optuna.storages.RDBStorage(url), RUN, {"ray-a", "ray-b"})
    fresh = make_search(url)  # Ray calls no restore: there is no searcher snapshot
    fresh.on_trial_result("ray-b", {"epoch": 1, "r_mean": 12.0})
    fresh.suggest("ray-c")
    assert fresh.suggest("ray-d") == Searcher.FINISHED
    trials = stored(url)
    assert [t.user_attrs["ray_trial_id"] for t in trials] == ["ray-a", "ray-b", "ray-c"]
    assert trials[1].intermediate_values == {1: 12.0}


def test_a_slot_held_by_a_trial_ray_lost_is_freed(url: str, tmp_path: Path):
    """The limiter's snapshot names a live trial that Ray's snapshot lacks: Ray never ends it,
    so without pruning the only slot stays taken and the resumed sweep waits for ever."""
    limiter = PerCellConcurrencyLimiter(make_search(url), max_concurrent=1)
    lost = limiter.suggest("ray-a")
    snapshot = tmp_path / "searcher.pkl"
    limiter.save(str(snapshot))
    limits = limiter.get_state()  # Ray keeps the wrappers' state beside the searcher's

    requeue_lost_trials(optuna.storages.RDBStorage(url), RUN, set())
    restored = PerCellConcurrencyLimiter(make_search(url), max_concurrent=1)
    restored.restore(str(snapshot))
    restored.set_state(limits)
    assert restored.live_trials == {"ray-a"}
    again = restored.suggest("ray-b")
    assert again is not None and again["lr"] == lost["lr"]
    assert restored.live_trials == {"ray-b"}
    assert restored.suggest("ray-c") is None  # the one slot is ray-b's
