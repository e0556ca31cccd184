"""The driver's epoch log: one history per trial, each epoch's last report kept (a resumed
trial reports again the epochs after its checkpoint), a line a kill cut short skipped; the
trials table built from it has only the Ray trials the Optuna studies name."""

from __future__ import annotations

from types import SimpleNamespace

import optuna

from study.epoch_log import EpochLog, epoch_log_path, read_epoch_log
from study.results import trials_table


def report(log: EpochLog, trial_id: str, config: dict, **result) -> None:
    """What Ray Tune calls with every result (its Trial has the ``trial_id`` and ``config``)."""
    trial = SimpleNamespace(trial_id=trial_id, config=config)
    log.on_trial_result(0, [trial], trial, {"trial_id": trial_id, "done": False, **result})


def test_each_epoch_keeps_its_last_report_and_the_trials_their_order(tmp_path):
    path = epoch_log_path(tmp_path, "sweep")
    log = EpochLog(path)
    a, b = {"cell": "clip:adamw", "lr": 0.01}, {"cell": "clip:lion", "lr": 0.002}
    report(log, "a", a, epoch=1, r_mean=10.0, time_this_iter_s=1.0)
    report(log, "b", b, epoch=1, r_mean=5.0, time_this_iter_s=2.0)
    report(log, "a", a, epoch=2, r_mean=20.0, time_this_iter_s=1.1)
    report(log, "a", a, epoch=2, r_mean=20.0, time_this_iter_s=1.4)  # after a resume
    report(log, "a", a, epoch=3, r_mean=30.0, time_this_iter_s=1.2)
    report(log, "a", a, r_mean=99.0)  # no epoch: not an epoch result
    with path.open("a") as file:
        file.write('{"trial_id": "b", "config": {"cell"')  # the kill cut this line short

    first, second = read_epoch_log(path)
    assert (first.trial_id, first.config, second.trial_id, second.config) == ("a", a, "b", b)
    assert first.epochs["epoch"].tolist() == [1, 2, 3]
    assert first.epochs["time_this_iter_s"].tolist() == [1.0, 1.4, 1.2]
    assert list(first.epochs.columns) == ["epoch", "r_mean", "time_this_iter_s"]  # no "done"
    assert second.epochs["r_mean"].tolist() == [5.0]


def test_no_log_is_no_trials(tmp_path):
    assert read_epoch_log(epoch_log_path(tmp_path, "confirm")) == []


def test_the_trials_table_leaves_out_a_ray_trial_no_optuna_trial_names(tmp_path):
    """A kill can lose a Ray trial after its first epoch reached the log but before Ray's
    snapshot held it; --resume asks its Optuna trial again under a new Ray trial. The table
    has the new Ray trial's epochs only (before: the lost one's too, as number -1)."""
    path = epoch_log_path(tmp_path, "sweep")
    log = EpochLog(path)
    config = {"cell": "clip:adamw", "lr": 0.01}
    report(log, "lost", config, epoch=1, r_mean=10.0, time_this_iter_s=1.0)
    report(log, "asked-again", config, epoch=1, r_mean=11.0, time_this_iter_s=1.0)
    report(log, "asked-again", config, epoch=2, r_mean=21.0, time_this_iter_s=1.0)
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.set_user_attr("ray_trial_id", "asked-again")  # what the requeued ask wrote
    study.tell(trial, 21.0)

    table = trials_table(read_epoch_log(path), {"clip:adamw": study})
    assert table["trial_id"].tolist() == ["asked-again", "asked-again"]
    assert table["number"].tolist() == [0, 0]
    assert table["r_mean"].tolist() == [11.0, 21.0]
