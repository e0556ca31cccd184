"""Every registered search space samples only valid trials, for 200 trials of a real sampler,
and the ``cells`` override restricts a study to chosen (loss, optimizer) pairs."""

from __future__ import annotations

import optuna
import pytest
import torch

from search_spaces import SPACES, SearchSpace
from search_spaces.knobs import OverrideError
from search_spaces.seeds import (
    ADAMW_LR,
    LION_LR,
    LION_WEIGHT_DECAY,
    LOSSES,
    LR_RANGES,
    OPTIMIZER_KNOBS,
    WEIGHT_DECAY,
    WEIGHT_DECAY_RANGES,
)
from trainables.config import DataPaths, TrialConfig
from trainables.losses import build_loss
from trainables.optim import build_optimizer

BASE = TrialConfig(data=DataPaths("unused"))


def sampled_configs(space: SearchSpace, n_trials: int, seed: int = 0) -> list[dict]:
    """Configs as Ray passes them to trials: suggested params plus the returned constants."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    configs = []
    for number in range(n_trials):
        trial = study.ask()
        constants = space(trial) or {}
        configs.append({**trial.params, **constants})
        study.tell(trial, float(number % 7))  # some feedback, so TPE leaves its start-up phase
    return configs


@pytest.mark.parametrize("name", sorted(SPACES))
def test_every_sampled_config_builds_a_valid_trial_and_loss(name):
    for params in sampled_configs(SearchSpace(name), 200):
        cfg = BASE.with_params(params)
        loss = build_loss(cfg.loss, num_samples=2, **cfg.loss_kwargs())
        assert loss is not None
        layer = torch.nn.Linear(2, 2)
        build_optimizer(
            cfg.optimizer,
            layer.named_parameters(),
            lr=cfg.lr,
            weight_decay=0.1,
            knobs=cfg.optimizer_params,
        )
        if "tau_min" in params:
            assert params["tau_min"] < params["tau_max"]
        if "tau_init" in params:
            assert params["tau_min"] <= params["tau_init"] <= params["tau_max"]


def test_seeds_space_covers_every_loss_and_optimizer_with_its_own_ranges_and_knobs():
    configs = sampled_configs(SearchSpace("seeds"), 200)
    assert {c["loss"] for c in configs} == set(LOSSES)
    assert {c["optimizer"] for c in configs} == set(LR_RANGES)
    for config in configs:
        optimizer = config["optimizer"]
        low, high = LR_RANGES[optimizer]
        assert low <= config["lr"] <= high
        low, high = WEIGHT_DECAY_RANGES[optimizer]
        assert low <= config["weight_decay"] <= high
        searched = {k: v for k, v in config.items() if k.startswith("optimizer_")}
        assert searched.keys() == OPTIMIZER_KNOBS[optimizer].keys()
        for name, (low, high) in OPTIMIZER_KNOBS[optimizer].items():
            assert low <= searched[name] <= high
        knobs = BASE.with_params(config).optimizer_params
        assert dict(knobs) == {k.removeprefix("optimizer_"): v for k, v in searched.items()}


def test_lion_searches_its_own_lr_and_weight_decay_ranges_and_its_beta2():
    """Lion's lr 3-10x smaller and weight decay 3-10x larger than AdamW's (its authors' rule),
    and its beta2 around its default 0.99."""
    (adamw_lr_low, adamw_lr_high), (lion_lr_low, lion_lr_high) = ADAMW_LR, LION_LR
    assert LR_RANGES["adamw"] == ADAMW_LR and LR_RANGES["lion"] == LION_LR
    assert (lion_lr_low, lion_lr_high) == pytest.approx((adamw_lr_low / 10, adamw_lr_high / 3))
    (adamw_wd_low, adamw_wd_high), (lion_wd_low, lion_wd_high) = WEIGHT_DECAY, LION_WEIGHT_DECAY
    assert WEIGHT_DECAY_RANGES["adamw"] == WEIGHT_DECAY
    assert WEIGHT_DECAY_RANGES["lion"] == LION_WEIGHT_DECAY
    assert (lion_wd_low, lion_wd_high) == pytest.approx((adamw_wd_low * 3, adamw_wd_high * 10))
    configs = sampled_configs(SearchSpace("seeds", {"cells": ["clip:lion", "clip:adamw"]}), 60)
    lion = [c for c in configs if c["optimizer"] == "lion"]
    assert len(lion) >= 15
    for config in lion:
        assert LION_LR[0] <= config["lr"] <= LION_LR[1]
        assert LION_WEIGHT_DECAY[0] <= config["weight_decay"] <= LION_WEIGHT_DECAY[1]
        assert 0.95 <= config["optimizer_beta2"] <= 0.995
    assert min(c["lr"] for c in lion) < ADAMW_LR[0]  # below AdamW's range: Lion's own
    assert max(c["weight_decay"] for c in lion) > WEIGHT_DECAY[1]


def test_optimizer_knobs_are_fixed_and_narrowed_from_the_study_file():
    """A fixed beta2 reaches Lion and AdamW trials, a narrowed one stays in its range, and
    SGD's momentum is a knob apart."""
    cells = ["clip:lion", "clip:adamw", "sogclr:sgd_nesterov"]
    overrides = {"cells": cells, "optimizer_beta2": 0.98, "optimizer_momentum": [0.9, 0.92]}
    configs = sampled_configs(SearchSpace("seeds", overrides), 30)
    assert {c["cell"] for c in configs} == set(cells)
    for config in configs:
        knobs = dict(BASE.with_params(config).optimizer_params)
        if config["optimizer"] == "sgd_nesterov":
            assert knobs.keys() == {"momentum"} and 0.9 <= knobs["momentum"] <= 0.92
        else:
            assert knobs == {"beta2": 0.98}


def test_cells_restrict_the_study_to_chosen_pairs():
    cells = ["sogclr:sgd_nesterov", "cyclip:adamw", "isogclr_tempnet:adamw"]
    configs = sampled_configs(SearchSpace("seeds", {"cells": cells}), 40)
    assert {f"{c['loss']}:{c['optimizer']}" for c in configs} == set(cells)
    assert all(c["cell"] == f"{c['loss']}:{c['optimizer']}" for c in configs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cells": ["sogclr:adam"]}, "not loss:optimizer"),
        ({"cells": "sogclr:adamw"}, "expected a list"),
        ({"tau_min": [0.5, 0.9]}, "does not overlap"),
        ({"cells": ["clip:adamw", "sogclr:adamw", "clip:adamw"]}, "'clip:adamw' is listed twice"),
    ],
)
def test_bad_cells_and_ranges_are_rejected(overrides, message):
    with pytest.raises(OverrideError, match=message):
        SearchSpace("seeds", {"cells": ["isogclr:adamw"], **overrides}).validate()


def test_a_narrowed_range_stays_inside_the_space_range():
    space = SearchSpace("seeds", {"cells": ["isogclr:adamw"], "tau_max": [0.01, 5.0]})
    for config in sampled_configs(space, 30):
        assert config["tau_min"] < config["tau_max"] <= 0.5


def test_cells_of_a_space_follow_the_overrides():
    assert SearchSpace("demo").cells() == [
        "clip:adamw",
        "clip:sgd_nesterov",
        "sogclr:adamw",
        "sogclr:sgd_nesterov",
    ]
    assert SearchSpace("demo", {"optimizer": "adamw"}).cells() == ["clip:adamw", "sogclr:adamw"]
    assert len(SearchSpace("seeds").cells()) == 8 * 7
    with pytest.raises(OverrideError, match="'clip' is listed twice"):
        SearchSpace("demo", {"loss": ["clip", "clip"]}).cells()


def test_a_cell_space_samples_only_that_cell_and_keeps_the_other_overrides():
    space = SearchSpace("demo", {"optimizer": "adamw", "lr": 0.002}).for_cell("sogclr:adamw")
    for config in sampled_configs(space, 10):
        assert (config["cell"], config["loss"], config["optimizer"]) == (
            "sogclr:adamw",
            "sogclr",
            "adamw",
        )
        assert config["lr"] == 0.002
