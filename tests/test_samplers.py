"""``[sampler]``: each cell study's Optuna sampler, fitted to the cell's trial budget.

Proven here, with real Optuna samplers and studies (no Ray cluster):

* The automatic start-up is a quarter of the budget, at least 2, at most the budget; an
  explicit ``startup_trials`` wins.
* A TPE sampler of start-up n draws its first n trials exactly as ``RandomSampler`` with the
  same seed does and trial n+1 differently (the start-up count is really the one used), while
  ``startup_trials = 10`` (clipstudy before issue 13) stays random for all 8 trials of a cell.
* TPE with its default start-up gets, on average over 10 seeds, less than half of random
  search's best value on a known 2-D quadratic within 12 trials (the model does something).
* Trials ASHA stopped reach TPE through the harness's own searcher: PRUNED, with their
  intermediate values, and TPE's model-based draws follow those values.
* ``warm_start``: a cell tries its neighbour's best COMPLETE config with the knobs both
  distribute alike (all of them for the same optimizer, not lr across optimizers); without
  it, nothing is transplanted.
* The runner gives every cell study a sampler of the study file's kind (default random
  search; tpe is multivariate, grouped TPE with constant liar).
* A bad ``[sampler]`` entry is a one-line usage error (exit 2) before Ray starts, and the
  resolved ``study.toml`` keeps the section.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import optuna
import pytest
from cli_helpers import BASE, _no_ray, expect_usage_error  # noqa: F401

from study.config import SamplerSection, config_from_dict, to_toml
from study.optuna_bridge import TruthfulOptunaSearch
from study.ray_optuna_adapter import asked_trial
from study.runner import build_searcher
from study.samplers import auto_startup_trials, build_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.mark.parametrize(
    ("budget", "startup"), [(1, 1), (2, 2), (3, 2), (8, 2), (9, 3), (12, 3), (40, 10)]
)
def test_auto_startup_is_a_quarter_of_the_budget(budget, startup):
    assert auto_startup_trials(budget) == startup


def draws(sampler: optuna.samplers.BaseSampler, n: int) -> list[float]:
    """x of ``n`` trials of a study minimising (x - 0.3)^2, told as they come."""
    study = optuna.create_study(sampler=sampler)
    xs = []
    for _ in range(n):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        study.tell(trial, (x - 0.3) ** 2)
        xs.append(x)
    return xs


def test_tpe_is_random_for_exactly_its_startup_trials():
    random = draws(optuna.samplers.RandomSampler(seed=3), 8)
    auto = draws(build_sampler(SamplerSection(kind="tpe"), trials_per_cell=8, seed=3), 8)
    assert auto[:2] == random[:2]
    assert auto[2] != random[2]
    before = draws(build_sampler(SamplerSection(kind="tpe", startup_trials=10), 8, seed=3), 8)
    assert before == random


def best_of(sampler: optuna.samplers.BaseSampler, n: int) -> float:
    study = optuna.create_study(sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float("x", -5, 5), trial.suggest_float("y", -5, 5)
        return (x - 1.0) ** 2 + (y + 2.0) ** 2

    study.optimize(objective, n_trials=n)
    return study.best_value


def test_tpe_beats_random_within_a_small_budget():
    seeds = range(10)
    tpe_section = SamplerSection(kind="tpe")
    tpe = [best_of(build_sampler(tpe_section, trials_per_cell=12, seed=s), 12) for s in seeds]
    random = [best_of(optuna.samplers.RandomSampler(seed=s), 12) for s in seeds]
    assert sum(tpe) < 0.5 * sum(random)  # measured: mean best 1.26 against 3.32


def demo_config(tmp_path: Path, **sampler) -> dict:
    text = BASE.replace("DATA_DIR", str(tmp_path))
    raw = tomllib.loads(text)
    raw["study"]["storage"] = f"journal:{tmp_path / 'optuna.journal'}"
    if sampler:
        raw["sampler"] = sampler
    return raw


@pytest.mark.parametrize(
    ("sampler", "kind"),
    [
        ({}, optuna.samplers.RandomSampler),
        ({"kind": "tpe"}, optuna.samplers.TPESampler),
        ({"kind": "gp"}, optuna.samplers.GPSampler),
    ],
)
def test_every_cell_study_gets_the_configured_sampler(tmp_path, sampler, kind):
    cfg = config_from_dict(demo_config(tmp_path, **sampler))
    search = build_searcher(cfg)
    samplers = []
    for number, cell in enumerate(cfg.cells):
        search.suggest(f"t{number}")
        samplers.append(asked_trial(search.searchers[cell], f"t{number}").study.sampler)
    assert len(samplers) == 4 and all(type(s) is kind for s in samplers)
    assert len({id(s) for s in samplers}) == 4  # one sampler per cell, not one shared
    if kind is optuna.samplers.TPESampler:
        tpe = samplers[0]
        assert (tpe._multivariate, tpe._group, tpe._constant_liar) == (True, True, True)
        assert tpe._n_startup_trials == auto_startup_trials(cfg.study.trials_per_cell)


def test_resolved_study_file_keeps_the_sampler(tmp_path):
    cfg = config_from_dict(demo_config(tmp_path, kind="gp", startup_trials=3))
    assert tomllib.loads(to_toml(cfg))["sampler"] == {
        "kind": "gp",
        "startup_trials": 3,
        "warm_start": False,
    }


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        ('sampler.kind="cmaes"', ["sampler.kind", "'tpe'", "'cmaes'"]),
        ("sampler.startup_trials=-1", ["sampler.startup_trials", ">= 0"]),
        ("sampler.startup=3", ["sampler.startup", "did you mean 'startup_trials'"]),
        ("sampler.warm_start=1", ["sampler.warm_start", "bool"]),
    ],
)
def test_bad_sampler_is_a_usage_error(capsys, tmp_path, tiny_dataset, assignment, words):
    config = tmp_path / "study.toml"
    config.write_text(BASE.replace("DATA_DIR", str(tiny_dataset)))
    runs = tmp_path / "runs"
    argv = ["sweep", str(config), "--set", f'study.runs_dir="{runs}"', "--set", assignment]
    expect_usage_error(capsys, argv, *words)
    assert not runs.exists()


def asha_stopped_sweep(value_of_x, seed: int) -> tuple[list[float], optuna.Study]:
    """8 trials of a 1-D space through the harness's own searcher, each stopped by 'ASHA'
    after epoch 2 of 4 with r_mean ``value_of_x(x)`` at epochs 1 and 2; the x drawn."""
    search = TruthfulOptunaSearch(
        space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)},
        metric="r_mean",
        mode="max",
        sampler=build_sampler(SamplerSection("tpe", startup_trials=4), 8, seed=seed),
        max_epochs=4,
    )
    xs = []
    for number in range(8):
        trial_id = f"t{number}"
        x = search.suggest(trial_id)["x"]
        for epoch in (1, 2):
            search.on_trial_result(trial_id, {"epoch": epoch, "r_mean": value_of_x(x) * epoch})
        search.on_trial_complete(trial_id, result={"epoch": 2, "r_mean": value_of_x(x) * 2})
        xs.append(x)
    return xs, asked_trial(search, "t0").study


def test_stopped_trials_reach_tpe_as_pruned_with_their_last_value():
    """Stopped trials are PRUNED with their intermediate values, and TPE follows those values:
    its model-based draws (after 4 random ones) move towards high x when r_mean grows with x
    and towards low x when it falls; the random start-ups are the same in both."""
    rising, falling = [], []
    for seed in range(6):
        up, study = asha_stopped_sweep(lambda x: x, seed)
        down, _ = asha_stopped_sweep(lambda x: 1.0 - x, seed)
        assert up[:4] == down[:4]
        rising += up[4:]
        falling += down[4:]
        trials = study.get_trials()
        assert {t.state for t in trials} == {optuna.trial.TrialState.PRUNED}
        assert trials[0].intermediate_values == {1: up[0], 2: 2 * up[0]}
    assert np.mean(rising) > 0.55 > 0.45 > np.mean(falling)  # measured: 0.65 and 0.30


def three_rounds(tmp_path: Path, warm_start: bool) -> tuple[dict, dict]:
    """Three trials per cell of clip:adamw, sogclr:adamw and clip:sgd_nesterov, suggested
    round-robin; clip:adamw's second trial is its best COMPLETE one (50 against 10), finished
    before the other cells' second trials. Returns that trial's params and cell -> (config,
    user attributes) of the second round."""
    raw = demo_config(tmp_path, warm_start=warm_start)
    raw["study"]["trials_per_cell"] = 3
    raw["search"]["cells"] = ["clip:adamw", "sogclr:adamw", "clip:sgd_nesterov"]
    cfg = config_from_dict(raw)
    search = build_searcher(cfg)
    done = cfg.scheduler.max_epochs
    second: dict = {}
    for number in range(9):
        config = search.suggest(f"t{number}")
        if number in (0, 3):  # clip:adamw's first two trials run their full budget
            result = {"epoch": done, "r_mean": 10.0 if number == 0 else 50.0}
            search.on_trial_result(f"t{number}", result)
            search.on_trial_complete(f"t{number}", result=result)
        if number in (3, 4, 5):
            attrs = asked_trial(search.searchers[config["cell"]], f"t{number}").user_attrs
            second[config["cell"]] = (config, attrs)
    best = asked_trial(search.searchers["clip:adamw"], "t3").params
    return best, second


def test_warm_start_tries_a_neighbours_best_config_with_the_knobs_they_share(tmp_path):
    best, second = three_rounds(tmp_path, warm_start=True)
    sogclr, attrs = second["sogclr:adamw"]  # same lr, weight decay and temperature ranges
    assert {k: sogclr[k] for k in ("lr", "weight_decay", "temperature")} == {
        k: best[k] for k in ("lr", "weight_decay", "temperature")
    }
    assert attrs["warm_start_from"] == "clip:adamw#1"
    sgd, attrs = second["clip:sgd_nesterov"]  # SGD's lr range differs: only the other two
    assert (sgd["weight_decay"], sgd["temperature"]) == (best["weight_decay"], best["temperature"])
    assert sgd["lr"] != best["lr"] and attrs["warm_start_from"] == "clip:adamw#1"
    assert "warm_start_from" not in second["clip:adamw"][1]
    (tmp_path / "cold").mkdir()
    _, cold = three_rounds(tmp_path / "cold", warm_start=False)
    assert not any("warm_start_from" in attrs for _, attrs in cold.values())
