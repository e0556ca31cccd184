"""Which epochs a trial checkpoints: every epoch by default, in a sweep only where ASHA may stop
it (its rungs, the same as Ray's ASHA computes) and at the full budget; validated, and never
written to the run directory's ``study.toml`` (it follows from ``[scheduler]``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.tune.schedulers import ASHAScheduler

from study.config import SchedulerSection, load_config, to_toml
from study.errors import UsageError
from trainables.config import DataPaths, TrialConfig

DEMO_TOML = Path(__file__).parents[1] / "configs" / "demo.toml"


@pytest.mark.parametrize(
    ("max_epochs", "grace", "factor", "expected"),
    [
        (6, 2, 2, (2, 4, 6)),
        (8, 2, 2, (2, 4, 8)),
        (30, 5, 3, (5, 15, 30)),
        (27, 1, 3, (1, 3, 9, 27)),
        (3, 1, 2, (1, 2, 3)),
        (1, 1, 2, (1,)),
    ],
)
def test_rung_epochs_are_ray_asha_rungs_and_the_budget(max_epochs, grace, factor, expected):
    scheduler = SchedulerSection(max_epochs, grace, factor)
    assert scheduler.rung_epochs == expected
    asha = ASHAScheduler(
        time_attr="epoch", max_t=max_epochs, grace_period=grace, reduction_factor=factor
    )
    milestones = {milestone for milestone, _ in asha._brackets[0]._rungs}  # Ray's own rungs
    assert set(scheduler.rung_epochs) == {m for m in milestones if m <= max_epochs} | {max_epochs}


def test_a_study_checkpoints_its_trials_at_the_rungs_only(tmp_path: Path, tiny_dataset: Path):
    cfg = load_config(DEMO_TOML, [f'data.dir="{tiny_dataset}"'], name="ckpt")
    assert cfg.trial.checkpoint_epochs == (2, 4, 6)
    assert [e for e in range(1, 7) if cfg.trial.checkpoints_after(e)] == [2, 4, 6]
    written = tmp_path / "study.toml"
    written.write_text(to_toml(cfg))
    assert "checkpoint_epochs" not in written.read_text()
    assert load_config(written).trial == cfg.trial
    with pytest.raises(UsageError, match=r"unknown key trial\.checkpoint_epochs"):
        load_config(DEMO_TOML, [f'data.dir="{tiny_dataset}"', "trial.checkpoint_epochs=[1]"])


def test_a_trial_outside_a_sweep_checkpoints_every_epoch():
    cfg = TrialConfig(DataPaths("/data"), epochs=3)
    assert [cfg.checkpoints_after(e) for e in (1, 2, 3)] == [True, True, True]
    sparse = TrialConfig(DataPaths("/data"), epochs=5, checkpoint_epochs=[2])  # type: ignore[arg-type]
    assert sparse.checkpoint_epochs == (2,)  # a list (from a dict) becomes a tuple
    assert [e for e in range(1, 6) if sparse.checkpoints_after(e)] == [2, 5]  # and the last
    assert TrialConfig.from_dict(sparse.to_dict()) == sparse


@pytest.mark.parametrize("epochs", [(0, 2), (3, 2), (2, 2), (1.5,)])
def test_bad_checkpoint_epochs_are_refused_in_one_line(epochs):
    with pytest.raises(ValueError, match=r"trial.checkpoint_epochs must be increasing"):
        TrialConfig(DataPaths("/data"), checkpoint_epochs=epochs)
