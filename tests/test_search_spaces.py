"""Search spaces: the demo space's parameters, real Optuna sampling, study-file overrides."""

from __future__ import annotations

import math
import pickle

import optuna
import pytest

from search_spaces import SPACES, Knobs, OverrideError, SearchSpace
from search_spaces.demo import LR_RANGES, demo_space
from trainables.config import DataPaths, TrialConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)

BASE = TrialConfig(data=DataPaths("/data/synth"))
ALL_PARAMS = {"loss", "optimizer", "lr", "weight_decay", "temperature", "gamma"}


def sample(space: SearchSpace, n: int, sampler: optuna.samplers.BaseSampler) -> list[dict]:
    """Ask ``n`` trials of an in-memory study, telling each a value that depends on its params
    (so that TPE has something to model); returns every trial's params."""
    study = optuna.create_study(sampler=sampler, direction="maximize")
    configs = []
    for _ in range(n):
        trial = study.ask()
        space(trial)
        params = dict(trial.params)
        configs.append(params)
        value = -abs(math.log10(params["lr"]) + 2.5) + (params["loss"] == "sogclr")
        study.tell(trial, value)
    return configs


def check_valid(params: dict) -> TrialConfig:
    """Assert ``params`` is a valid demo configuration and return its TrialConfig."""
    assert params["loss"] in ("clip", "sogclr")
    assert params["optimizer"] in LR_RANGES
    low, high = LR_RANGES[params["optimizer"]]
    assert low <= params["lr"] <= high, params
    assert 1e-4 <= params["weight_decay"] <= 0.3
    assert 0.01 <= params["temperature"] <= 0.2
    if params["loss"] == "sogclr":
        assert 0.1 <= params["gamma"] <= 1.0
    else:
        assert "gamma" not in params
    cfg = BASE.with_params(params)
    assert (cfg.loss, cfg.optimizer, cfg.lr) == (params["loss"], params["optimizer"], params["lr"])
    assert set(cfg.loss_params) == set(params) & {"temperature", "gamma"}
    return cfg


# --- the demo space with fixed values ---------------------------------------------------------

CLIP_PARAMS = {
    "loss": "clip",
    "optimizer": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.01,
    "temperature": 0.05,
}


def test_demo_space_with_a_fixed_clip_trial():
    trial = optuna.trial.FixedTrial(CLIP_PARAMS | {"gamma": 0.5})
    knobs = Knobs(trial, {})
    demo_space(knobs)
    assert knobs.used == set(CLIP_PARAMS)  # no gamma for clip
    assert trial.params == CLIP_PARAMS
    check_valid(trial.params)


def test_demo_space_with_a_fixed_sogclr_trial():
    params = CLIP_PARAMS | {"loss": "sogclr", "optimizer": "sgd_nesterov", "lr": 0.5, "gamma": 0.9}
    trial = optuna.trial.FixedTrial(params)
    SearchSpace("demo")(trial)
    assert trial.params == params
    cfg = check_valid(trial.params)
    assert dict(cfg.loss_params) == {"temperature": 0.05, "gamma": 0.9}


def test_demo_space_asks_for_gamma_with_sogclr():
    trial = optuna.trial.FixedTrial(CLIP_PARAMS | {"loss": "sogclr"})
    with pytest.raises(ValueError, match="gamma"):
        SearchSpace("demo")(trial)


# --- sampling ----------------------------------------------------------------------------------


def test_tpe_samples_only_valid_configs():
    configs = sample(SearchSpace("demo"), 200, optuna.samplers.TPESampler(seed=0))
    for params in configs:
        check_valid(params)
    combos = {(p["loss"], p["optimizer"]) for p in configs}
    assert combos == {(loss, opt) for loss in ("clip", "sogclr") for opt in LR_RANGES}
    sgd_lrs = [p["lr"] for p in configs if p["optimizer"] == "sgd_nesterov"]
    assert max(sgd_lrs) > LR_RANGES["adamw"][1]  # the per-optimizer range is really used


def test_same_sampler_seed_gives_the_same_configs():
    space = SearchSpace("demo")
    first = sample(space, 30, optuna.samplers.TPESampler(seed=3))
    assert sample(space, 30, optuna.samplers.TPESampler(seed=3)) == first
    assert sample(space, 30, optuna.samplers.TPESampler(seed=4)) != first


def test_search_space_is_picklable():
    space = SearchSpace("demo", {"optimizer": ["adamw"], "lr": [1e-3, 2e-3]})
    restored = pickle.loads(pickle.dumps(space))
    assert restored == space
    for params in sample(restored, 5, optuna.samplers.RandomSampler(seed=0)):
        assert params["optimizer"] == "adamw"


# --- overrides ----------------------------------------------------------------------------------


def test_validate_reports_the_parameters_used():
    assert SearchSpace("demo").validate() == ALL_PARAMS
    assert "demo" in SPACES


def test_fixing_parameters():
    space = SearchSpace("demo", {"loss": "sogclr", "lr": 0.002, "optimizer": "adamw"})
    assert space.validate() == ALL_PARAMS
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        space(trial)
        assert (trial.params["loss"], trial.params["optimizer"]) == ("sogclr", "adamw")
        assert trial.params["lr"] == 0.002
        assert "gamma" in trial.params
        # still suggested, as one-value distributions, so every trial carries them
        assert trial.distributions["lr"].low == trial.distributions["lr"].high == 0.002
        assert trial.distributions["loss"].choices == ("sogclr",)
        study.tell(trial, 0.0)


def test_narrowing_choices():
    space = SearchSpace("demo", {"optimizer": ["sgd_nesterov"], "loss": ["clip", "sogclr"]})
    configs = sample(space, 40, optuna.samplers.RandomSampler(seed=2))
    assert {p["optimizer"] for p in configs} == {"sgd_nesterov"}
    assert {p["loss"] for p in configs} == {"clip", "sogclr"}
    for params in configs:
        check_valid(params)


def test_narrowing_ranges():
    overrides = {"lr": [2e-3, 4e-3], "gamma": [0.5, 0.6], "temperature": [0.02, 0.03]}
    configs = sample(SearchSpace("demo", overrides), 60, optuna.samplers.TPESampler(seed=0))
    for params in configs:
        assert 2e-3 <= params["lr"] <= 4e-3
        assert 0.02 <= params["temperature"] <= 0.03
        if "gamma" in params:
            assert 0.5 <= params["gamma"] <= 0.6
    assert any("gamma" in p for p in configs)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            {"temprature": 0.05},
            r"search.temprature: .*no such parameter.*did you mean 'temperature'",
        ),
        (
            {"momentum": 0.9},
            r"search.momentum: space 'demo' has no such parameter \(it uses gamma,",
        ),
        (
            {"optimizer": ["adamw", "sgd"]},
            r"search.optimizer: 'sgd' is not a valid choice; "
            r"choose from adamw, sgd_nesterov",
        ),
        (
            {"loss": "siglip"},
            r"search.loss: 'siglip' is not a valid choice; choose from clip, sogclr",
        ),
        ({"loss": []}, r"search.loss: .* is not a valid choice"),
        ({"lr": [0.1, 0.01]}, r"search.lr: low 0.1 is above high 0.01"),
        ({"weight_decay": [0, 0.1]}, r"search.weight_decay: a log-scale parameter needs low > 0"),
        ({"lr": -1.0}, r"search.lr: a log-scale parameter needs low > 0, got -1"),
        (
            {"lr": "fast"},
            r"search.lr: expected a number \(to fix it\) or \[low, high\], got 'fast'",
        ),
        ({"lr": [1e-3, 1e-2, 0.1]}, r"search.lr: expected a number"),
        ({"gamma": True}, r"search.gamma: expected a number"),
        ({"gamma": ["a", "b"]}, r"search.gamma: expected a number"),
    ],
)
def test_bad_overrides_raise_override_error(overrides, pattern):
    with pytest.raises(OverrideError, match=pattern):
        SearchSpace("demo", overrides).validate()


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            {"optimizer_beta3": 0.9},
            r"search.optimizer_beta3: space 'seeds' has no such parameter .*"
            r"did you mean 'optimizer_beta2'",
        ),
        (
            {"optimizer_momentum": 0.9},  # SGD's knob; the study has Lion only
            r"search.optimizer_momentum: space 'seeds' has no such parameter",
        ),
        ({"optimizer_beta2": [1.1, 1.2]}, r"search.optimizer_beta2: \[1.1, 1.2\] does not overlap"),
        ({"optimizer_beta2": "high"}, r"search.optimizer_beta2: expected a number"),
    ],
)
def test_bad_optimizer_knob_overrides_raise_override_error(overrides, pattern):
    with pytest.raises(OverrideError, match=pattern):
        SearchSpace("seeds", {"cells": ["clip:lion"], **overrides}).validate()


def test_the_demo_space_searches_no_optimizer_knob():
    with pytest.raises(OverrideError, match=r"search.optimizer_beta2: space 'demo' has no such"):
        SearchSpace("demo", {"optimizer_beta2": 0.98}).validate()


def test_non_log_parameter_accepts_zero_low():
    space = SearchSpace("demo", {"gamma": [0.0, 0.5], "loss": "sogclr"})
    assert "gamma" in space.validate()


def test_unknown_space_name():
    with pytest.raises(OverrideError, match=r"unknown search space 'dmeo'; choose one of demo"):
        SearchSpace("dmeo")
