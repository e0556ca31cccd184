"""A sweep of data-parallel trials through real Ray Tune, Ray Train V2 (TorchTrainer, gloo),
ASHA and Optuna: ``resources.workers_per_trial = 2``.

What is proven: the Tune trials (drivers of two Train workers each) report every epoch, so
Optuna's states and the tidy table are as truthful as with one worker; the Train runs keep
their checkpoints under the Tune trial's directory; a trial's train losses are those of the
same config trained on one process at the same global batch; and a sweep killed with -9 in the
middle of a trial resumes it with both ranks restored from rank 0's last checkpoint.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import sqlalchemy
import torch
from cluster_helpers import clipstudy, ray_env, short_tmpdir
from test_sweep import (
    MAX_EPOCHS,
    _wait_for,
    assert_resumed_without_loss_or_duplicates,
    assert_truthful,
    trials_of,
    write_config,
)

from study.cli import run
from trainables.checkpoint import STATE_FILE
from trainables.config import TrialConfig
from trainables.trial import run_trial


@pytest.mark.slow  # 2-4 min on 2 busy cores: each Train run starts 2 worker processes
def test_a_sweep_of_two_worker_trials_matches_one_process(tiny_dataset, tmp_path):
    config = write_config(tmp_path, tiny_dataset, name="ddp", trials_per_cell=2)
    text = config.read_text().replace("max_concurrent = 1", "max_concurrent = 2")
    text = text.replace("[resources]\n", "[resources]\nworkers_per_trial = 2\n")
    config.write_text(text.replace('optimizer = "adamw"', 'cells = ["clip:adamw"]'))
    run_dir = tmp_path / "runs" / "ddp"
    assert run(["sweep", str(config)]) == 0
    assert _placement_groups_left() == [], "a stopped trial's Train workers kept their CPUs"

    trials = trials_of(run_dir)
    assert len(trials) == 2
    assert_truthful(trials)
    table = pd.read_parquet(run_dir / "trials.parquet")
    assert not table.duplicated(["trial_id", "epoch"]).any()
    for trial in trials:
        trial_dir = run_dir / "ray" / "sweep" / f"trial_{trial.user_attrs['ray_trial_id']}"
        kept = [path for path in (trial_dir / "train").glob("checkpoint_*") if path.is_dir()]
        last = max(kept)  # rank 0's newest (named by time)
        saved = torch.load(last / STATE_FILE, weights_only=False)
        recorded = trial.user_attrs["epochs_completed"]
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert saved["epochs_done"] == recorded
        else:  # ASHA's stop can reach the Train run after it checkpointed the next epoch
            assert recorded <= saved["epochs_done"] <= recorded + 1

    best = max(trials, key=lambda t: (t.user_attrs["epochs_completed"], t.value))
    assert best.user_attrs["epochs_completed"] == MAX_EPOCHS
    rows = table[table["trial_id"] == best.user_attrs["ray_trial_id"]]
    base = TrialConfig.from_dict(_resolved_trial(run_dir))
    one_process: list[float] = []
    params = {**best.params, "loss": "clip", "optimizer": "adamw"}
    run_trial(base.with_params(params), lambda m, _: one_process.append(m["train_loss"]))
    assert rows["train_loss"].tolist() == pytest.approx(one_process, rel=1e-4)


def _running_with_a_checkpoint(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials in the middle of their epochs (RUNNING, some epochs reported) whose Train run
    has a checkpoint and whose Ray trial the experiment snapshot already names, so that a
    resume restores them rather than starting them again."""
    if not (run_dir / "optuna.db").exists():
        return []
    try:
        trials = trials_of(run_dir)
    except (KeyError, sqlalchemy.exc.SQLAlchemyError):  # the study is still being created
        return []
    experiment = run_dir / "ray" / "sweep"
    snapshots = " ".join(
        p.read_text(errors="replace") for p in experiment.glob("experiment_state*")
    )
    return [
        trial
        for trial in trials
        if trial.state == optuna.trial.TrialState.RUNNING
        and 1 <= len(trial.intermediate_values) < MAX_EPOCHS
        and trial.user_attrs.get("ray_trial_id", "?") in snapshots
        and any(experiment.glob(f"trial_{trial.user_attrs['ray_trial_id']}/train/checkpoint_*"))
    ]


@pytest.fixture(scope="module")
def killed_and_resumed(tiny_dataset, tmp_path_factory):
    """A sweep of two-worker trials (2 cells x 1 trial) killed with -9 while a trial is
    between epochs, then resumed; the run directory, the interrupted trial as Optuna had it at
    the kill, and its train losses trained on one process without a break."""
    tmp = tmp_path_factory.mktemp("ddp-resume")
    config = write_config(tmp, tiny_dataset, name="ddp-resumable", trials_per_cell=1)
    resources = "[resources]\nworkers_per_trial = 2\n"  # (no actor reuse: study.ray_session)
    config.write_text(config.read_text().replace("[resources]\n", resources))
    run_dir = tmp / "runs" / "ddp-resumable"
    env = ray_env(short_tmpdir("rd"))
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    driver = clipstudy("sweep", str(config), env=env, **quiet)
    try:
        # ~1 min on an idle machine; over 5 min at a load of 18 on 2 cores
        assert _wait_for(lambda: _running_with_a_checkpoint(run_dir), timeout_s=900)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        driver.kill()
    interrupted = _running_with_a_checkpoint(run_dir)[0]
    resumed = clipstudy(
        "sweep",
        str(run_dir),
        "--resume",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, output[-3000:]
    attrs = interrupted.user_attrs
    params = {**interrupted.params, "loss": attrs["loss"], "optimizer": attrs["optimizer"]}
    one_process: list[float] = []
    base = TrialConfig.from_dict(_resolved_trial(run_dir))
    run_trial(base.with_params(params), lambda m, _: one_process.append(m["train_loss"]))
    return run_dir, interrupted, one_process


def _rows_of(run_dir: Path, trial: optuna.trial.FrozenTrial) -> pd.DataFrame:
    table = pd.read_parquet(run_dir / "trials.parquet")
    return table[table["trial_id"] == trial.user_attrs["ray_trial_id"]].sort_values("epoch")


@pytest.mark.slow  # 5-10 min on 2 busy cores (with the next test: one sweep, killed and resumed)
def test_a_killed_sweep_of_two_worker_trials_resumes_every_rank(killed_and_resumed):
    """No trial lost or duplicated; the interrupted trial went on from its checkpoint (epochs
    after the kill only, to the full budget: it is alone in its cell's ASHA) with the train
    losses of one process trained without a break, which a rank that had not restored rank 0's
    checkpoint (weights, optimizer, loss state) would change."""
    run_dir, interrupted, one_process = killed_and_resumed
    assert_resumed_without_loss_or_duplicates(run_dir, per_cell=1)
    done = len(interrupted.intermediate_values)  # epochs reported before the kill
    assert 1 <= done < MAX_EPOCHS
    rows = _rows_of(run_dir, interrupted)
    after = rows[rows["epoch"] > done]
    assert after["epoch"].tolist() == list(range(done + 1, MAX_EPOCHS + 1))
    assert after["train_loss"].tolist() == pytest.approx(one_process[done:], rel=1e-4)


def _placement_groups_left(timeout_s: float = 10.0) -> list[str]:
    """The placement groups of this process's Ray not removed within ``timeout_s``."""
    from ray.util import placement_group_table

    deadline = time.monotonic() + timeout_s
    while True:
        left = [g for g, info in placement_group_table().items() if info["state"] != "REMOVED"]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.mark.slow
def test_the_trials_table_keeps_the_epochs_before_the_kill(killed_and_resumed):
    run_dir, interrupted, one_process = killed_and_resumed
    rows = _rows_of(run_dir, interrupted)
    assert rows["epoch"].tolist() == list(range(1, MAX_EPOCHS + 1))
    assert rows["train_loss"].tolist() == pytest.approx(one_process, rel=1e-4)


def _resolved_trial(run_dir: Path) -> dict:
    """The base trial config the sweep ran (``study.toml`` of the run)."""
    from study.config import load_config

    return load_config(run_dir / "study.toml").trial.to_dict()
