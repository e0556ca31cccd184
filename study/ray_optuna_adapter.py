"""The one place clipstudy reaches into a dependency beyond its public API.

:class:`study.optuna_bridge.TruthfulOptunaSearch` replaces Ray's handling of results and
completions, so it needs the Optuna trial that ``OptunaSearch.suggest`` asked for a Ray
trial. Ray offers no public accessor for it; this module reads it from:

- ``ray.tune.search.optuna.OptunaSearch._ot_trials``: a dict, Ray trial id ->
  ``optuna.trial.Trial``, filled by ``suggest`` and kept by ``save``/``restore``. A resumed
  sweep rebuilds it from the study (:func:`set_asked_trials`): the searcher's snapshot and
  Ray's may be from different moments.
- ``ray.tune.search.optuna.OptunaSearch._ot_study``: the ``optuna.Study`` it asks and tells
  (:func:`asked_study`), to make the Optuna trials of that rebuilt map.

Nothing else private is used: TruthfulOptunaSearch keeps its own set of finished Ray trials
(not ``OptunaSearch._completed_trials``), and a stored trial's id comes from the storage's
``get_study_id_from_name`` and ``get_trial_id_from_study_id_trial_number`` (not
``FrozenTrial._trial_id``). tests/test_ray_optuna_adapter.py checks the names above on the
installed Ray and Optuna and names both versions when one is gone.
"""

from __future__ import annotations

import optuna
from ray.tune.search.optuna import OptunaSearch


def asked_trial(searcher: OptunaSearch, ray_trial_id: str) -> optuna.trial.Trial:
    """The Optuna trial that ``searcher.suggest(ray_trial_id)`` asked its study for."""
    return searcher._ot_trials[ray_trial_id]


def asked_trials(searcher: OptunaSearch) -> dict[str, optuna.trial.Trial]:
    """Ray trial id -> the Optuna trial ``searcher`` asked for it, for every trial so far."""
    return dict(searcher._ot_trials)


def asked_study(searcher: OptunaSearch) -> optuna.Study:
    """The study ``searcher`` asks its trials from and tells their results to."""
    study = searcher._ot_study
    if study is None:
        raise RuntimeError("the OptunaSearch has no study yet: it was given no search space")
    return study


def set_asked_trials(searcher: OptunaSearch, trials: dict[str, optuna.trial.Trial]) -> None:
    """Make ``trials`` (Ray trial id -> Optuna trial) all that ``searcher`` has asked for."""
    searcher._ot_trials = dict(trials)
