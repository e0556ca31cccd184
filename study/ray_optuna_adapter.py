"""The one place clipstudy reaches into a dependency beyond its public API.

:class:`study.optuna_bridge.TruthfulOptunaSearch` replaces Ray's handling of results and
completions, so it needs the Optuna trial that ``OptunaSearch.suggest`` asked for a Ray
trial. Ray offers no public accessor for it; this module reads it from:

- ``ray.tune.search.optuna.OptunaSearch._ot_trials``: a dict, Ray trial id ->
  ``optuna.trial.Trial``, filled by ``suggest`` and kept by ``save``/``restore`` (so a resumed
  sweep still finds the trials asked before the interruption).

Nothing else private is used: the trial's study is the public ``Trial.study`` (not
``OptunaSearch._ot_study``), TruthfulOptunaSearch keeps its own set of finished Ray trials
(not ``OptunaSearch._completed_trials``), and a stored trial's id comes from the storage's
``get_study_id_from_name`` and ``get_trial_id_from_study_id_trial_number`` (not
``FrozenTrial._trial_id``). tests/test_ray_optuna_adapter.py checks the name above on the
installed Ray and Optuna and names both versions when it is gone.
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
