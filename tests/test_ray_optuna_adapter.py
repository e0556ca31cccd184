"""What ``study.ray_optuna_adapter`` relies on, checked on the installed Ray and Optuna.

A real ``OptunaSearch`` (no cluster needed) over the demo space's ``clip:adamw`` cell suggests
two trials. Proven here: ``OptunaSearch._ot_trials`` still maps each Ray trial id to the
``optuna.trial.Trial`` that ``suggest`` asked for (same number and params as in the study),
that trial's public ``study`` is the searcher's study, ``save``/``restore`` into a fresh
searcher keeps the mapping, and ``OptunaSearch._ot_study`` is the study a map rebuilt on
resume is told through. An upgrade that renames or removes a private name fails here with a
message naming the Ray and Optuna versions.
"""

from __future__ import annotations

import optuna
import pytest
import ray
from ray.tune.search.optuna import OptunaSearch

from search_spaces import SearchSpace
from study.ray_optuna_adapter import asked_study, asked_trial, set_asked_trials

STUDY = "adapter"
VERSIONS = f"ray {ray.__version__}, optuna {optuna.__version__}"


def searcher(storage: optuna.storages.BaseStorage) -> OptunaSearch:
    """As study.runner builds one cell's searcher (without TruthfulOptunaSearch's changes)."""
    return OptunaSearch(
        space=SearchSpace("demo", {}).for_cell("clip:adamw"),
        metric="r_mean",
        mode="max",
        storage=storage,
        study_name=STUDY,
        seed=0,
    )


def asked(search: OptunaSearch, ray_trial_id: str) -> optuna.trial.Trial:
    """``asked_trial``, or a failure that says which private name broke, and where."""
    if not isinstance(getattr(search, "_ot_trials", None), dict):
        pytest.fail(
            f"OptunaSearch has no dict _ot_trials any more ({VERSIONS}): "
            "study/ray_optuna_adapter.asked_trial must find the asked Optuna trial another way"
        )
    trial = asked_trial(search, ray_trial_id)
    if not isinstance(trial, optuna.trial.Trial):
        pytest.fail(
            f"OptunaSearch._ot_trials holds {type(trial).__name__}, not optuna.trial.Trial "
            f"({VERSIONS}): update study/ray_optuna_adapter.asked_trial"
        )
    return trial


def test_asked_trial_is_the_trial_suggest_asked_for():
    storage = optuna.storages.InMemoryStorage()
    search = searcher(storage)
    configs = {ray_id: search.suggest(ray_id) for ray_id in ("ray-a", "ray-b")}
    stored = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert [t.number for t in stored] == [0, 1]
    for ray_id, frozen in zip(configs, stored, strict=True):
        trial = asked(search, ray_id)
        assert trial.number == frozen.number, f"wrong trial for {ray_id} ({VERSIONS})"
        assert trial.params == frozen.params
        assert trial.params.items() <= configs[ray_id].items()  # what the Ray trial trains
        assert trial.study.study_name == STUDY


def test_asked_trials_survive_save_and_restore(tmp_path):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    search = searcher(optuna.storages.RDBStorage(url))
    search.suggest("ray-a")
    search.save(str(tmp_path / "searcher.pkl"))

    restored = searcher(optuna.storages.RDBStorage(url))
    restored.restore(str(tmp_path / "searcher.pkl"))
    trial = asked(restored, "ray-a")
    assert trial.number == 0, f"restore lost the asked trial ({VERSIONS})"
    trial.report(12.5, 1)
    trial.study.tell(trial, 12.5)
    (frozen,) = optuna.load_study(study_name=STUDY, storage=url).trials
    assert (frozen.state, frozen.value, frozen.intermediate_values) == (
        optuna.trial.TrialState.COMPLETE,
        12.5,
        {1: 12.5},
    )


def test_a_rebuilt_map_is_what_the_searcher_reports_to():
    """``asked_study`` is the study ``suggest`` asks from, and after ``set_asked_trials`` the
    searcher's own ``on_trial_complete`` tells the trial of the rebuilt map."""
    storage = optuna.storages.InMemoryStorage()
    search = searcher(storage)
    search.suggest("ray-a")
    study = asked_study(search)
    assert isinstance(study, optuna.Study) and study.study_name == STUDY, VERSIONS
    set_asked_trials(search, {"ray-b": asked(search, "ray-a")})
    search.on_trial_complete("ray-b", {"r_mean": 7.0})
    (frozen,) = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert (frozen.state, frozen.value) == (optuna.trial.TrialState.COMPLETE, 7.0), VERSIONS
