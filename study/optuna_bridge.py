"""Ray's OptunaSearch, made to tell Optuna the truth about every trial.

Ray's stock searcher tells a trial that ASHA stopped early COMPLETE with its partial-budget
value and never reports the last result as an intermediate value. :class:`TruthfulOptunaSearch`
reports every epoch (step = ``epoch``), tells COMPLETE only when the trial ran its full epoch
budget, PRUNED when the scheduler stopped it earlier, and FAIL with the reason on an error.
Each Optuna trial carries the user attributes ``loss``, ``optimizer``, ``ray_trial_id`` from
its start and, once it is finished (COMPLETE, PRUNED or FAIL), ``epochs_completed`` (and
``fail_reason`` for failures). Every storage write is a round-trip (an SQLite commit), so a
running trial's progress is its intermediate values alone: one write per epoch.

After a kill -9 of the driver, three records of the sweep can be from different moments:
Ray's experiment snapshot (which trials exist), the searcher's snapshot (which Optuna trial
each runs) and the Optuna study (written at once). Ray writes both snapshots together but
uploads them to remote storage as separate files, so either may be the newer one. The study
is the ledger: every asked trial carries its ``ray_trial_id``. On resume,
:func:`requeue_lost_trials` sets back to WAITING every RUNNING trial whose Ray trial is not in
Ray's snapshot (Optuna's next ``ask`` hands it out again: same number, same parameters), and
:meth:`TruthfulOptunaSearch.adopt_stored_trials` rebuilds the searcher's map from the study.
A trial that finished after Ray's snapshot is run again by Ray; its rerun does not write to
the finished Optuna trial.

Ray tells the searcher about an error before the error's text is at hand, so failures are
told by :class:`FailureRecorder`, a Tune callback that runs right after, with the reason.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import optuna
from optuna.trial import TrialState
from ray.tune import Callback
from ray.tune.search.optuna import OptunaSearch

from study.ray_optuna_adapter import asked_study, asked_trial, asked_trials, set_asked_trials
from study.storage import open_storage
from study.studies import load_cell_studies


def failure_reason(error_file: Path) -> str:
    """The last meaningful line of a Ray trial's error file (the exception message)."""
    if not error_file.is_file():
        return "the trial raised an error (no error file found)"
    lines = [line.strip() for line in error_file.read_text().splitlines() if line.strip()]
    return lines[-1] if lines else "the trial raised an error"


class TruthfulOptunaSearch(OptunaSearch):
    """OptunaSearch with honest trial states (see the module docstring).

    Args:
        max_epochs: the full epoch budget; a trial that reached it is COMPLETE.
        Other arguments as for ``OptunaSearch``.
    """

    def __init__(self, *args, max_epochs: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._study_storage: optuna.storages.BaseStorage | None = kwargs.get("storage")
        self._study_name_given: str | None = kwargs.get("study_name")
        self._max_epochs = max_epochs
        self._reported_steps: dict[str, set[int]] = {}
        self._finished: set[str] = set()  # Ray trials whose completion was handled

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if config is not None:
            ot_trial = asked_trial(self, trial_id)
            ot_trial.set_user_attr("ray_trial_id", trial_id)
            ot_trial.set_user_attr("loss", config.get("loss"))
            ot_trial.set_user_attr("optimizer", config.get("optimizer"))
        return config

    def _stored_study(self) -> tuple[optuna.storages.BaseStorage, int] | None:
        """This searcher's storage and study id, None for pickles from before they were kept."""
        storage = getattr(self, "_study_storage", None)
        name = getattr(self, "_study_name_given", None)
        if storage is None or name is None:
            return None
        return storage, storage.get_study_id_from_name(name)

    def adopt_stored_trials(self) -> list[str]:
        """Rebuild from the study which Optuna trial each Ray trial runs (its ``ray_trial_id``),
        leaving out WAITING ones (requeued by :func:`requeue_lost_trials`); a rerun of a
        finished trial writes nothing, a running trial's reported epochs are not reported
        again. Returns the Ray trial ids, in Optuna's order."""
        if (stored := self._stored_study()) is None:  # a pickle from before the ledger
            return list(asked_trials(self))
        storage, study_id = stored
        study = asked_study(self)
        owned = [
            (trial.user_attrs["ray_trial_id"], trial)
            for trial in storage.get_all_trials(study_id, deepcopy=False)
            if "ray_trial_id" in trial.user_attrs and trial.state != TrialState.WAITING
        ]
        set_asked_trials(
            self,
            {
                ray_id: optuna.trial.Trial(
                    study, storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
                )
                for ray_id, t in owned
            },
        )
        self._finished = {ray_id for ray_id, t in owned if t.state.is_finished()}
        self._reported_steps = {ray_id: set(t.intermediate_values) for ray_id, t in owned}
        return [ray_id for ray_id, _ in owned]

    def has_finished(self, trial_id: str) -> bool:
        """Whether this searcher has handled the end of Ray trial ``trial_id``."""
        return trial_id in self._finished

    def _record(self, trial_id: str, result: dict) -> None:
        """Report ``result``'s metric at step ``epoch`` once."""
        epoch = int(result["epoch"])
        steps = self._reported_steps.setdefault(trial_id, set())
        if epoch not in steps:
            asked_trial(self, trial_id).report(float(result[self.metric]), epoch)
            steps.add(epoch)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id not in self._finished:
            self._record(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id in self._finished:
            return
        ot_trial = asked_trial(self, trial_id)
        if result and "epoch" in result:
            self._record(trial_id, result)
        ot_trial.set_user_attr("epochs_completed", max(self._reported_steps.get(trial_id, {0})))
        if error:
            pass  # left RUNNING for FailureRecorder, which has the reason
        elif result and "epoch" in result and int(result["epoch"]) >= self._max_epochs:
            ot_trial.study.tell(ot_trial, float(result[self.metric]))
        else:
            ot_trial.study.tell(ot_trial, state=TrialState.PRUNED)
        self._finished.add(trial_id)


def trial_dirname(trial) -> str:
    """Ray ``trial_dirname_creator``: one folder per trial named by its id."""
    return f"trial_{trial.trial_id}"


class FailureRecorder(Callback):
    """Tells FAIL, with ``fail_reason``, the Optuna trial of a Ray trial that errored (found
    by its ``ray_trial_id`` among the cell studies of run ``run``)."""

    def __init__(self, storage_url: str, run: str) -> None:
        self.storage_url = storage_url
        self.run = run

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        storage = open_storage(self.storage_url)
        for study in load_cell_studies(storage, self.run).values():
            for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if frozen.user_attrs.get("ray_trial_id") == trial.trial_id:
                    reason = failure_reason(Path(trial.error_file)) if trial.error_file else None
                    fail_trial(storage, study, frozen, reason or "the trial raised an error")


def requeue_lost_trials(
    storage: optuna.storages.BaseStorage, run: str, snapshot_trial_ids: Collection[str]
) -> int:
    """Set WAITING every RUNNING trial of run ``run``'s cell studies whose Ray trial is not in
    ``snapshot_trial_ids`` (the trials of the Ray snapshot a resumed sweep starts from): no
    Ray trial will finish it, and the next ``ask`` in its study hands it out again. Returns
    how many."""
    lost = 0
    for study in load_cell_studies(storage, run).values():
        study_id = storage.get_study_id_from_name(study.study_name)
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if trial.user_attrs.get("ray_trial_id") not in snapshot_trial_ids:
                trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
                storage.set_trial_state_values(trial_id, state=TrialState.WAITING)
                lost += 1
    return lost


def fail_orphans(storage: optuna.storages.BaseStorage, study: optuna.Study, reason: str) -> int:
    """Tell FAIL every trial still RUNNING in ``study`` (of ``storage``): no Ray trial will
    finish it."""
    orphans = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for trial in orphans:
        fail_trial(storage, study, trial, reason)
    return len(orphans)


def fail_trial(
    storage: optuna.storages.BaseStorage,
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    reason: str,
) -> None:
    """Record ``reason`` as the user attribute ``fail_reason`` of ``trial`` (a RUNNING trial
    of ``study``, which lives in ``storage``), and ``epochs_completed`` (its last reported
    epoch) unless set, and tell FAIL."""
    study_id = storage.get_study_id_from_name(study.study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    storage.set_trial_user_attr(trial_id, "fail_reason", reason)
    if "epochs_completed" not in trial.user_attrs:
        last_epoch = max(trial.intermediate_values, default=0)
        storage.set_trial_user_attr(trial_id, "epochs_completed", last_epoch)
    study.tell(trial.number, state=TrialState.FAIL)
