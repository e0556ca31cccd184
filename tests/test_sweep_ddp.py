"""A sweep of data-parallel trials through real Ray Tune, Ray Train V2 (TorchTrainer, gloo),
ASHA and Optuna: ``resources.workers_per_trial = 2``.

What is proven: the Tune trials (drivers of two Train workers each) report every epoch, so
Optuna's states and the tidy table are as truthful as with one worker; the Train runs keep
their checkpoints under the Tune trial's directory; and a trial's train losses are those of the
same config trained on one process at the same global batch.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from test_sweep import MAX_EPOCHS, assert_truthful, trials_of, write_config

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
        assert saved["epochs_done"] == trial.user_attrs["epochs_completed"]

    best = max(trials, key=lambda t: (t.user_attrs["epochs_completed"], t.value))
    assert best.user_attrs["epochs_completed"] == MAX_EPOCHS
    rows = table[table["trial_id"] == best.user_attrs["ray_trial_id"]]
    base = TrialConfig.from_dict(_resolved_trial(run_dir))
    one_process: list[float] = []
    params = {**best.params, "loss": "clip", "optimizer": "adamw"}
    run_trial(base.with_params(params), lambda m, _: one_process.append(m["train_loss"]))
    assert rows["train_loss"].tolist() == pytest.approx(one_process, rel=1e-4)


def _resolved_trial(run_dir: Path) -> dict:
    """The base trial config the sweep ran (``study.toml`` of the run)."""
    from study.config import load_config

    return load_config(run_dir / "study.toml").trial.to_dict()
