"""Suggestions that honour a study file's ``[search]`` table.

A space is written once, as plain ``knobs.choice`` / ``knobs.log_float`` / ``knobs.float``
calls; the study file can then, without Python, *fix* a parameter (a scalar), *narrow* the
choices of a categorical one (a list of names) or narrow the range of a numeric one
(``[low, high]``, intersected with the space's own range). Fixed parameters are still
suggested, as one-value distributions, so every Optuna trial carries every parameter it used.

The loss and optimizer are drawn by :meth:`Knobs.cell`; ``cells = ["loss:optimizer", ...]``
in ``[search]`` restricts a study to chosen (loss, optimizer) pairs instead of the product of
the two lists (Optuna forbids categorical choices that change from trial to trial, so the
pairs become one categorical parameter ``cell``).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

Override = Any  # a scalar (fix), a list of choices, or [low, high]


class OverrideError(ValueError):
    """A ``[search]`` entry that does not fit the parameter it names."""


class CellsFound(Exception):
    """Raised by :class:`CellsProbe` with the cells a space allows."""

    def __init__(self, cells: list[str]) -> None:
        super().__init__(cells)
        self.cells = cells


class Knobs:
    """Wraps an ``optuna.Trial``; every suggestion passes through the overrides."""

    def __init__(self, trial: optuna.trial.BaseTrial, overrides: Mapping[str, Override]) -> None:
        self.trial = trial
        self.overrides = overrides
        self.used: set[str] = set()
        self.constants: dict[str, Any] = {}

    def cell(self, losses: Sequence[str], optimizers: Sequence[str]) -> tuple[str, str]:
        """The (loss, optimizer) of the trial: two categorical parameters ``loss`` and
        ``optimizer``, or one parameter ``cell`` when the overrides list ``cells``."""
        if "cells" not in self.overrides:
            return self.choice("loss", losses), self.choice("optimizer", optimizers)
        cells = self.allowed_cells(losses, optimizers)
        loss, _, optimizer = self.trial.suggest_categorical("cell", cells).partition(":")
        self.constants.update(loss=loss, optimizer=optimizer)
        return loss, optimizer

    def allowed_cells(self, losses: Sequence[str], optimizers: Sequence[str]) -> list[str]:
        """The "loss:optimizer" pairs the overrides allow: ``cells`` if given, else the
        product of the (narrowed) loss and optimizer choices."""
        if "cells" not in self.overrides:
            self.used.update(("loss", "optimizer"))
            return [
                f"{loss}:{optimizer}"
                for loss in self._allowed("loss", losses)
                for optimizer in self._allowed("optimizer", optimizers)
            ]
        self.used.add("cells")
        cells = self.overrides["cells"]
        if not isinstance(cells, list) or not cells:
            raise OverrideError('search.cells: expected a list such as ["sogclr:adamw"]')
        for cell in cells:
            loss, _, optimizer = str(cell).partition(":")
            if loss not in losses or optimizer not in optimizers:
                raise OverrideError(
                    f"search.cells: {cell!r} is not loss:optimizer with a loss among "
                    f"{', '.join(losses)} and an optimizer among {', '.join(optimizers)}"
                )
        _require_unique("cells", cells)
        return list(cells)

    def choice(self, name: str, choices: Sequence[Any]) -> Any:
        """A categorical parameter; an override fixes it or picks a subset of ``choices``."""
        self.used.add(name)
        return self.trial.suggest_categorical(name, self._allowed(name, choices))

    def _allowed(self, name: str, choices: Sequence[Any]) -> list[Any]:
        """``choices``, or the subset an override of ``name`` picks (checked)."""
        if name not in self.overrides:
            return list(choices)
        wanted = self.overrides[name]
        wanted = wanted if isinstance(wanted, list) else [wanted]
        bad = [w for w in wanted if w not in choices]
        if bad or not wanted:
            raise OverrideError(
                f"search.{name}: {bad[0] if bad else '[]'!r} is not a valid choice; "
                f"choose from {', '.join(map(str, choices))}"
            )
        _require_unique(name, wanted)
        return wanted

    def log_float(self, name: str, low: float, high: float) -> float:
        """A log-uniform parameter in [low, high]."""
        return self._float(name, low, high, log=True)

    def float(self, name: str, low: float, high: float) -> float:
        """A uniform parameter in [low, high]."""
        return self._float(name, low, high, log=False)

    def _float(
        self, name: str, low: builtins.float, high: builtins.float, *, log: bool
    ) -> builtins.float:
        self.used.add(name)
        if name in self.overrides:
            low, high = _narrowed(name, self.overrides[name], low, high, log=log)
        return self.trial.suggest_float(name, low, high, log=log)


def _require_unique(name: str, values: list) -> None:
    """A list override names each choice once (each cell gets one study and one budget)."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise OverrideError(f"search.{name}: {repeated[0]!r} is listed twice; list it once")


def _narrowed(name: str, value: Override, low: float, high: float, *, log: bool):
    """The override of a numeric parameter: a fixed value as (v, v), or [low, high]
    intersected with the space's range (low_space, high_space)."""
    new_low, new_high = _numeric_range(name, value, log=log)
    if new_low == new_high:
        return new_low, new_high
    narrowed = max(low, new_low), min(high, new_high)
    if narrowed[0] > narrowed[1]:
        raise OverrideError(
            f"search.{name}: [{new_low:g}, {new_high:g}] does not overlap the space's range "
            f"[{low:g}, {high:g}]; fix a value instead to leave the range"
        )
    return narrowed


def _numeric_range(name: str, value: Override, *, log: bool) -> tuple[float, float]:
    """An override of a numeric parameter as (low, high)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if is_number:
        low = high = float(value)
    elif (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        low, high = float(value[0]), float(value[1])
    else:
        raise OverrideError(
            f"search.{name}: expected a number (to fix it) or [low, high], got {value!r}"
        )
    if low > high:
        raise OverrideError(f"search.{name}: low {low:g} is above high {high:g}")
    if log and low <= 0:
        raise OverrideError(f"search.{name}: a log-scale parameter needs low > 0, got {low:g}")
    return low, high


class CellsProbe(Knobs):
    """Runs a space only up to its :meth:`Knobs.cell` call, which raises :class:`CellsFound`
    with the cells the overrides allow (no trial needed)."""

    def __init__(self, overrides: Mapping[str, Override]) -> None:
        super().__init__(trial=optuna.trial.FixedTrial({}), overrides=overrides)  # never asked

    def cell(self, losses: Sequence[str], optimizers: Sequence[str]) -> tuple[str, str]:
        raise CellsFound(self.allowed_cells(losses, optimizers))
