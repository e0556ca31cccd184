"""The Optuna sampler of every cell study, fitted to the cell's trial budget.

A study file chooses it in ``[sampler]`` (:class:`study.config.SamplerSection`):

- ``"tpe"``: multivariate TPE with ``group=True`` (the conditional loss knobs get their own
  joint model) and ``constant_liar`` (trials in flight count as bad, so concurrent trials
  spread out). It samples at random only for its first ``startup_trials`` trials: by default
  ``auto_startup_trials(trials_per_cell)``, a quarter of the cell's budget and at least 2,
  where Optuna's own default of 10 would be the whole budget of both shipped studies (3 and 8
  trials per cell). TPE learns from ASHA-stopped trials too: they are PRUNED with an
  intermediate value per epoch (:mod:`study.optuna_bridge`), and TPE ranks pruned trials by
  the epoch they reached, then by their last value.
- ``"gp"``: Optuna's ``GPSampler`` (Gaussian process, log-EI) after the same start-up; it
  learns from COMPLETE trials only, so under ASHA it sees few.
- ``"random"`` (the default): uniform random search, which no set-up above beat on
  ``benchmarks/search_efficiency.py`` (README, "Why the shipped studies use random search").

``startup_trials = 10`` with ``kind = "tpe"`` is the sampler of clipstudy before issue 13.
"""

from __future__ import annotations

import math
import warnings

import optuna

from study.config import SamplerSection


def auto_startup_trials(trials_per_cell: int) -> int:
    """Random trials before the model takes over: ceil(trials_per_cell / 4), at least 2 (a
    density needs two observations); never more than the budget."""
    return min(trials_per_cell, max(2, math.ceil(trials_per_cell / 4)))


def startup_trials(section: SamplerSection, trials_per_cell: int) -> int:
    """The section's ``startup_trials``, or the automatic value when it is 0."""
    return section.startup_trials or auto_startup_trials(trials_per_cell)


def build_sampler(
    section: SamplerSection, trials_per_cell: int, seed: int
) -> optuna.samplers.BaseSampler:
    """A fresh sampler of kind ``section.kind`` for one cell study, seeded with ``seed``."""
    if section.kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    n_startup = startup_trials(section, trials_per_cell)
    if section.kind == "gp":
        return optuna.samplers.GPSampler(
            seed=seed, n_startup_trials=n_startup, warn_independent_sampling=False
        )
    with warnings.catch_warnings():  # Optuna marks group=True "experimental"
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup,
            multivariate=True,
            group=True,
            constant_liar=True,
        )
