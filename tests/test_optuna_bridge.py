"""``fail_orphans``/``fail_trial`` on a real Optuna study: every RUNNING trial, and only those,
becomes FAIL with its ``fail_reason`` and ``epochs_completed`` (its last reported epoch, 0 if
none); trials of another study in the same storage keep theirs.
A trial's storage id differs from its number here, so the id lookup is exercised. (End to
end, a failing Ray trial is told FAIL in tests/test_sweep.py.)"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from study.optuna_bridge import fail_orphans


def test_fail_orphans_fails_only_running_trials_with_their_reason():
    storage = optuna.storages.InMemoryStorage()
    other = optuna.create_study(study_name="run/sogclr/adamw", storage=storage)
    untouched = other.ask()  # first in the storage: the other study's trial ids != numbers
    study = optuna.create_study(study_name="run/clip/adamw", storage=storage, direction="maximize")
    done = study.ask()
    study.tell(done, 1.0)
    running = [study.ask(), study.ask()]
    running[1].report(5.0, 1)
    running[1].report(7.0, 2)

    assert fail_orphans(storage, study, "the sweep was interrupted") == 2
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL]
    assert "fail_reason" not in trials[0].user_attrs
    for trial, epochs in zip(running, (0, 2), strict=True):
        attrs = trials[trial.number].user_attrs
        assert attrs == {"fail_reason": "the sweep was interrupted", "epochs_completed": epochs}
    (still_running,) = other.get_trials()
    assert still_running.number == untouched.number
    assert (still_running.state, still_running.user_attrs) == (TrialState.RUNNING, {})
