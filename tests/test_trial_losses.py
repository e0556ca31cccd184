"""Every registered loss trains inside a real one-epoch trial (views made where needed), and
the loss's learnable parameters are trained by the optimizer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from study.config import load_config
from trainables.config import DataPaths, TrialConfig
from trainables.losses import LOSS_NAMES
from trainables.model_config import ModelConfig
from trainables.trial import build_state, run_trial
from trainables.trial_data import load_trial_data

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY_MODEL = ModelConfig(embed_dim=16, image_width=8, text_width=16, text_layers=1, text_heads=1)


def tiny_config(data_dir, loss: str) -> TrialConfig:
    return TrialConfig(
        data=DataPaths(str(data_dir)), model=TINY_MODEL, loss=loss, epochs=1, batch_size=16
    )


@pytest.mark.parametrize("loss", LOSS_NAMES)
def test_every_loss_trains_in_a_trial(tiny_dataset, loss):
    reported: list[dict] = []
    run_trial(tiny_config(tiny_dataset, loss), lambda metrics, _: reported.append(metrics))
    (metrics,) = reported
    assert math.isfinite(metrics["train_loss"])
    assert 0 <= metrics["r_mean"] <= 100
    uses_views = loss in ("amclr", "xamclr")
    assert (metrics["time_views_s"] > 0) == uses_views


@pytest.mark.parametrize("loss", ["siglip", "isogclr_tempnet"])
def test_loss_parameters_are_in_the_optimizer(tiny_dataset, loss):
    cfg = tiny_config(tiny_dataset, loss)
    state = build_state(cfg, load_trial_data(cfg))
    in_optimizer = {id(p) for group in state.optimizer.param_groups for p in group["params"]}
    loss_params = list(state.loss_fn.parameters())
    assert loss_params and all(id(p) in in_optimizer for p in loss_params)


@pytest.mark.parametrize("name", ["demo.toml", "seeds.toml"])
def test_shipped_study_files_load(tiny_dataset, name):
    """The study files in configs/ are valid: loading samples the space and builds the trial
    config and loss of every sampled config."""
    cfg = load_config(CONFIGS / name, [f'data.dir="{tiny_dataset}"'])
    assert cfg.study.space == name.removesuffix(".toml")
