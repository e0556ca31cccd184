"""Trial checkpoints: everything needed to continue a trial exactly where it stopped.

One file ``state.pt`` per checkpoint directory holding the completed epoch count, the model,
optimizer, LR schedule, fp16 gradient scaler and loss state dicts (the loss's per-sample
buffers u, b, tau ...) and the RNG states of torch (CPU and CUDA), numpy and Python.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.losses import ContrastiveLoss
from trainables.model import BimodalModel
from trainables.precision import MixedPrecision

STATE_FILE = "state.pt"


@dataclass
class TrainingState:
    """The mutable objects of a running trial."""

    model: BimodalModel
    loss_fn: ContrastiveLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    precision: MixedPrecision


def save_checkpoint(directory: Path, state: TrainingState, epochs_done: int) -> Path:
    """Write ``state`` after ``epochs_done`` completed epochs into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "epochs_done": epochs_done,
        "model": state.model.state_dict(),
        "loss": state.loss_fn.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "grad_scaler": state.precision.scaler.state_dict(),
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
    }
    torch.save(payload, directory / STATE_FILE)
    return directory


def load_checkpoint(directory: Path, state: TrainingState, device: torch.device) -> int:
    """Restore ``state`` (on ``device``) and the RNGs from ``directory``; returns the
    completed epoch count."""
    payload = torch.load(directory / STATE_FILE, map_location=device, weights_only=False)
    state.model.load_state_dict(payload["model"])
    _check_sample_state(payload["loss"], state.loss_fn)
    state.loss_fn.load_state_dict(payload["loss"])
    state.optimizer.load_state_dict(payload["optimizer"])
    state.scheduler.load_state_dict(payload["scheduler"])
    state.precision.scaler.load_state_dict(payload["grad_scaler"])
    torch.set_rng_state(payload["rng"]["torch"])
    np.random.set_state(payload["rng"]["numpy"])
    random.setstate(payload["rng"]["python"])
    if payload["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
    return int(payload["epochs_done"])


def _check_sample_state(saved: dict, loss_fn: ContrastiveLoss) -> None:
    """ValueError (one line) unless the checkpoint holds every per-sample state buffer of
    ``loss_fn`` with its shape, e.g. after the dataset size changed."""
    for name, buffer in loss_fn.sample_state().items():
        shape = tuple(saved[name].shape) if name in saved else None
        if shape != tuple(buffer.shape):
            raise ValueError(
                f"the checkpoint's loss state {name} has shape {shape}, this trial's has "
                f"{tuple(buffer.shape)}: it was written for another dataset size or loss; "
                "start the trial afresh"
            )
