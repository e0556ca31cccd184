"""Every registered search space samples only valid trials, for 200 trials of a real sampler,
and the ``cells`` override restricts a study to chosen (loss, optimizer) pairs."""

from __future__ import annotations

import optuna
import pytest

from search_spaces import SPACES, SearchSpace
from search_spaces.knobs import OverrideError
from search_spaces.seeds import LOSSES, LR_RANGES
from trainables.config import DataPaths, TrialConfig
from trainables.losses import build_loss

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
        if "tau_min" in params:
            assert params["tau_min"] < params["tau_max"]
        if "tau_init" in params:
            assert params["tau_min"] <= params["tau_init"] <= params["tau_max"]


def test_seeds_space_covers_every_loss_and_optimizer_with_its_own_lr_range():
    configs = sampled_configs(SearchSpace("seeds"), 200)
    assert {c["loss"] for c in configs} == set(LOSSES)
    assert {c["optimizer"] for c in configs} == set(LR_RANGES)
    for config in configs:
        low, high = LR_RANGES[config["optimizer"]]
        assert low <= config["lr"] <= high


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
