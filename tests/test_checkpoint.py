"""Trial checkpoints refuse a loss state written for another dataset size, in one line."""

import pytest
import torch

from trainables.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from trainables.losses import build_loss
from trainables.precision import MixedPrecision


def _state(num_samples: int) -> TrainingState:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    loss_fn = build_loss("sogclr", num_samples=num_samples)
    precision = MixedPrecision("fp32", torch.device("cpu"))
    return TrainingState(model, loss_fn, optimizer, scheduler, precision)


def test_a_checkpoint_restores_the_loss_state(tmp_path):
    saved = _state(8)
    saved.loss_fn.image_state.u[3] = 0.5
    save_checkpoint(tmp_path, saved, epochs_done=2)
    restored = _state(8)
    assert load_checkpoint(tmp_path, restored, torch.device("cpu")) == 2
    assert restored.loss_fn.image_state.u[3] == 0.5


def test_a_checkpoint_of_another_dataset_size_is_refused_in_one_line(tmp_path):
    save_checkpoint(tmp_path, _state(8), epochs_done=1)
    with pytest.raises(ValueError, match=r"image_state\.u has shape \(8,\).*\(6,\)") as error:
        load_checkpoint(tmp_path, _state(6), torch.device("cpu"))
    assert "\n" not in str(error.value)
