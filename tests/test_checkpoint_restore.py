"""A restored trial whose recorded checkpoint is gone restores its newest one, or starts
afresh: the race a driver killed between Ray's checkpoint deletion and its experiment
snapshot leaves behind."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pyarrow.fs
import pytest

from study.checkpoint_restore import newest_checkpoint
from study.config import config_from_dict
from study.ray_env import RAY_ENV
from study.ray_session import ray_trainable
from trainables.checkpoint import STATE_FILE


def _checkpoint_dir(trial: Path, name: str, *, complete: bool = True) -> None:
    (trial / name).mkdir(parents=True)
    if complete:
        (trial / name / STATE_FILE).write_bytes(b"state")


def test_newest_checkpoint_is_the_highest_complete_one(tmp_path):
    fs = pyarrow.fs.LocalFileSystem()
    assert newest_checkpoint(fs, str(tmp_path / "no-such-trial")) is None
    _checkpoint_dir(tmp_path, "checkpoint_000001")
    _checkpoint_dir(tmp_path, "checkpoint_000010")
    _checkpoint_dir(tmp_path, "checkpoint_000011", complete=False)  # an upload cut short
    _checkpoint_dir(tmp_path, "working_dirs")
    assert newest_checkpoint(fs, str(tmp_path)) == str(tmp_path / "checkpoint_000010")
    shutil.rmtree(tmp_path / "checkpoint_000010")
    shutil.rmtree(tmp_path / "checkpoint_000001")
    assert newest_checkpoint(fs, str(tmp_path)) is None


def _trainable(config, base):
    """Checkpoints epochs 1 and 2 (Ray keeps only the 2nd), then, on its first run, renames
    that checkpoint to a later number, as if Ray had deleted the one its snapshot names and
    the trial had written a newer one, and fails. The retry reports where it resumed."""
    import tempfile

    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        tune.report({"epoch": 3, "resumed_from": Path(checkpoint.path).name})
        return
    for epoch in (1, 2):
        with tempfile.TemporaryDirectory() as directory:
            (Path(directory) / STATE_FILE).write_bytes(b"state")
            tune.report({"epoch": epoch, "resumed_from": ""}, checkpoint=tune.Checkpoint(directory))
    trial_dir = Path(tune.get_context().get_storage().trial_fs_path)  # local storage here
    recorded = max(trial_dir.glob("checkpoint_*"))
    recorded.rename(trial_dir / "checkpoint_000009")
    raise RuntimeError("trial killed")


@pytest.mark.timeout(180)
def test_a_retried_trial_restores_the_newest_checkpoint_left(tmp_path, monkeypatch):
    for key, value in RAY_ENV.items():  # set for this test only
        monkeypatch.setenv(key, os.environ.get(key, value))
    import ray
    import ray.cloudpickle
    from ray import tune

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    cfg = config_from_dict({"study": {"name": "restore"}, "data": {"dir": str(tmp_path)}})
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        results = tune.Tuner(
            ray_trainable(cfg, _trainable),  # the sweep's trainable, with its restore fallback
            run_config=tune.RunConfig(
                storage_path=str(tmp_path),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=1),
                verbose=0,
            ),
        ).fit()
    finally:
        ray.shutdown()
    assert results.num_errors == 0
    assert results[0].metrics["resumed_from"] == "checkpoint_000009"
