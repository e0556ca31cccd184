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
from search_spaces.knobs import Knobs, Override, OverrideError

SPACES: dict[str, Callable[[Knobs], None]] = {
    "demo": demo_space,
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

    def __call__(self, trial: optuna.Trial) -> None:
        SPACES[self.name](Knobs(trial, self.overrides))

    def validate(self, n_trials: int = 64, seed: int = 0) -> set[str]:
        """Sample the space with a random sampler to check the overrides before any trial.

        Raises OverrideError for an override that does not fit its parameter or that names no
        parameter the space uses; returns the names of the parameters seen.
        """
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        used: set[str] = set()
        for _ in range(n_trials):
            knobs = Knobs(study.ask(), self.overrides)
            SPACES[self.name](knobs)
            used |= knobs.used
        for name in self.overrides:
            if name not in used:
                hint = difflib.get_close_matches(name, sorted(used), n=1)
                suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
                raise OverrideError(
                    f"search.{name}: space {self.name!r} has no such parameter "
                    f"(it uses {', '.join(sorted(used))}){suggestion}"
                )
        return used
