"""The Ray Tune function trainable: a thin adapter around :func:`trainables.trial.run_trial`.

Only the ``study`` package imports ``ray.tune``; trainables see a plain ``report`` callable.

A trial of one worker (``resources.workers_per_trial = 1``) trains inside the Tune trial. A
data-parallel trial follows Ray's Train V2 + Tune guide ("Hyperparameter Tuning with Ray
Tune"): the Tune trial is a driver that builds and fits a ``TorchTrainer`` of W workers (DDP
process group: NCCL on GPUs, gloo on CPU), each running :func:`run_trial` on its rank; rank 0's
reports reach Tune through ``TuneReportCallback`` (so ASHA and Optuna see the same metrics as
for one worker) and its checkpoints are kept by Ray Train under the Tune trial's directory.
Restarted on ``--resume``, the driver fits a trainer of the same name and storage path, which
Ray Train restores: every rank resumes from the last checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import tune

from study.train_placement import PLACEMENT_GROUP_KEY, current_placement_group_id
from trainables.config import TrialConfig
from trainables.trial import EpochReporter, run_trial


@dataclass(frozen=True)
class WorkerGroup:
    """The Ray Train workers of one data-parallel trial and what each of them asks Ray for."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float


def _report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
    checkpoint = None if checkpoint_dir is None else tune.Checkpoint.from_directory(checkpoint_dir)
    tune.report(metrics, checkpoint=checkpoint)


def _run(cfg: TrialConfig, report: EpochReporter, checkpoint) -> None:
    """Run ``cfg``, resuming from the Ray ``checkpoint`` when there is one."""
    if checkpoint is None:
        run_trial(cfg, report)
        return
    with checkpoint.as_directory() as directory:
        run_trial(cfg, report, resume_from=Path(directory))


def train_clip(
    config: dict[str, Any], base: dict[str, Any], workers: WorkerGroup | None = None
) -> None:
    """Train ``base`` (a :meth:`TrialConfig.to_dict`) with the searched ``config`` applied,
    resuming from Ray's checkpoint when the trial is restored; data-parallel on ``workers``
    when given."""
    cfg = TrialConfig.from_dict(base).with_params(config)
    if workers is None:
        _run(cfg, _report, tune.get_checkpoint())
    else:
        _fit_data_parallel(cfg, workers)


def train_confirmation(
    config: dict[str, Any], base: dict[str, Any], workers: WorkerGroup | None = None
) -> None:
    """A confirmation run: ``config["params"]`` holds one cell's best parameters and the seed
    (Ray's grid search over dicts nests them under one key)."""
    train_clip(config["params"], base, workers)


def _fit_data_parallel(cfg: TrialConfig, workers: WorkerGroup) -> None:
    """The driver of a data-parallel trial: fit a ``TorchTrainer`` of ``workers`` whose
    rank 0 reports to this Tune trial. Its run (``train`` under the trial's directory, on the
    experiment's storage) keeps the last checkpoint; a restarted trial restores it."""
    from ray.train.v2.api.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.v2.torch.torch_trainer import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    storage = tune.get_context().get_storage()
    resources = {"CPU": workers.cpus_per_worker, "GPU": workers.gpus_per_worker}
    trainer = TorchTrainer(
        _train_worker,
        train_loop_config={"trial": cfg.to_dict()},
        scaling_config=ScalingConfig(
            num_workers=workers.workers,
            use_gpu=workers.gpus_per_worker > 0,
            resources_per_worker=resources,
        ),
        run_config=RunConfig(
            name="train",
            storage_path=storage.trial_fs_path,
            storage_filesystem=storage.storage_filesystem,
            callbacks=[TuneReportCallback()],
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    trainer.fit()


def _train_worker(loop_config: dict[str, Any]) -> None:
    """One rank of a data-parallel trial (Ray Train has set up the process group)."""
    import ray.train
    import ray.train.torch
    import torch

    cfg = TrialConfig.from_dict(loop_config["trial"])
    if cfg.torch_device().type == "cuda":
        torch.cuda.set_device(ray.train.torch.get_device())  # "cuda" = this worker's GPU

    group = {PLACEMENT_GROUP_KEY: current_placement_group_id()}  # released when the trial ends

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        checkpoint = (
            None if checkpoint_dir is None else ray.train.Checkpoint.from_directory(checkpoint_dir)
        )
        ray.train.report({**metrics, **group}, checkpoint=checkpoint)

    _run(cfg, report, ray.train.get_checkpoint())
