"""Optuna define-by-run search spaces, by name.

A space is a function ``space(knobs: Knobs) -> None`` making only suggestions. ``SearchSpace``
binds one to the overrides of a study file and is what Ray's ``OptunaSearch`` calls with each
trial (it is picklable, so a restored sweep keeps its space).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import optuna

from search_spaces.demo import demo_space
from search_spaces.knobs import CellsFound, CellsProbe, Knobs, Override, OverrideError
from search_spaces.seeds import seeds_space

SPACES: dict[str, Callable[[Knobs], None]] = {
    "demo": demo_space,
    "seeds": seeds_space,
}

__all__ = ["SPACES", "Knobs", "OverrideError", "SearchSpace"]


@dataclass(frozen=True)
class SearchSpace:
    """A named space with the study file's overrides applied."""

    name: str
    overrides: Mapping[str, Override] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in SPACES:
            raise OverrideError(
                f"unknown search space {self.name!r}; choose one of {', '.join(SPACES)}"
            )

    def __call__(self, trial: optuna.Trial) -> dict | None:
        """Suggest a config; returns the constants (loss, optimizer of a ``cell``) if any."""
        knobs = Knobs(trial, self.overrides)
        SPACES[self.name](knobs)
        return knobs.constants or None

    def cells(self) -> list[str]:
        """The "loss:optimizer" cells the space allows with these overrides, in order."""
        try:
            SPACES[self.name](CellsProbe(self.overrides))
        except CellsFound as found:
            return found.cells
        raise OverrideError(f"search space {self.name!r} never draws a (loss, optimizer) cell")

    def for_cell(self, cell: str) -> SearchSpace:
        """This space with its (loss, optimizer) fixed to ``cell`` (a one-value ``cell``
        parameter): what the Optuna study of that cell samples."""
        kept = {k: v for k, v in self.overrides.items() if k not in ("loss", "optimizer", "cells")}
        return SearchSpace(self.name, {**kept, "cells": [cell]})

    def sample(self, n_trials: int = 64, seed: int = 0) -> tuple[list[dict], set[str]]:
        """Configs drawn by a random sampler (as Ray passes them to a trial) and the names of
        the parameters the space used; raises OverrideError for an override that does not fit."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        configs, used = [], set()
        for _ in range(n_trials):
            trial = study.ask()
            knobs = Knobs(trial, self.overrides)
            SPACES[self.name](knobs)
            used |= knobs.used
            configs.append({**trial.params, **knobs.constants})
        return configs, used

    def validate(self, n_trials: int = 64, seed: int = 0) -> set[str]:
        """Check the overrides before any trial: each must fit its parameter and name one the
        space uses. Returns the names of the parameters seen."""
        _, used = self.sample(n_trials, seed)
        for name in self.overrides:
            if name not in used:
                hint = difflib.get_close_matches(name, sorted(used), n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                raise OverrideError(
                    f"search.{name}: space {self.name!r} has no such parameter "
                    f"(it uses {', '.join(sorted(used))}){suggestion}"
                )
        return used
