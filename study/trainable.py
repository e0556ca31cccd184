"""The Ray Tune function trainable: a thin adapter around :func:`trainables.trial.run_trial`.

Only the ``study`` package imports ``ray.tune``; trainables see a plain ``report`` callable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray import tune

from trainables.config import TrialConfig
from trainables.trial import run_trial


def _report(metrics: dict[str, float], checkpoint_dir: Path) -> None:
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))


def train_clip(config: dict[str, Any], base: dict[str, Any]) -> None:
    """Train ``base`` (a :meth:`TrialConfig.to_dict`) with the searched ``config`` applied,
    resuming from Ray's checkpoint when the trial is restored."""
    cfg = TrialConfig.from_dict(base).with_params(config)
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        run_trial(cfg, _report)
        return
    with checkpoint.as_directory() as directory:
        run_trial(cfg, _report, resume_from=Path(directory))


def train_confirmation(config: dict[str, Any], base: dict[str, Any]) -> None:
    """A confirmation run: ``config["params"]`` holds one cell's best parameters and the seed
    (Ray's grid search over dicts nests them under one key)."""
    train_clip(config["params"], base)
