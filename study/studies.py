"""The Optuna studies of a run: one per (loss, optimizer) cell, plus the run's overview.

Every cell is tuned in its own study, ``"{run}/{loss}/{optimizer}"``, with the same number of
trials and its own ASHA rungs (the equal-budget protocol: a cell is never starved because
another cell looked better early). The study named after the run holds no trials: its note
says what the run is and, once ``clipstudy report`` ran, the verdict and key figures, so the
dashboard's study list shows the whole run.
"""

from __future__ import annotations

import optuna
from optuna.study import StudyDirection


def cell_study_name(run: str, cell: str) -> str:
    """``"demo", "clip:adamw"`` -> ``"demo/clip/adamw"``."""
    loss, _, optimizer = cell.partition(":")
    return f"{run}/{loss}/{optimizer}"


def cell_of_study(run: str, study_name: str) -> str | None:
    """The cell of a study of ``run`` (``None`` for another run's or the overview study)."""
    loss, sep, optimizer = study_name.removeprefix(f"{run}/").partition("/")
    is_cell = study_name.startswith(f"{run}/") and sep and "/" not in optimizer
    return f"{loss}:{optimizer}" if is_cell else None


def load_cell_studies(storage: optuna.storages.BaseStorage, run: str) -> dict[str, optuna.Study]:
    """Cell -> study for every cell study of ``run`` in ``storage``, sorted by cell."""
    cells = {
        cell: name
        for name in optuna.get_all_study_names(storage)
        if (cell := cell_of_study(run, name)) is not None
    }
    return {
        cell: optuna.load_study(study_name=cells[cell], storage=storage) for cell in sorted(cells)
    }


def overview_study(storage: optuna.storages.BaseStorage, run: str, mode: str) -> optuna.Study:
    """The run's overview study (created empty if missing); ``mode`` is "max" or "min"."""
    direction = StudyDirection.MAXIMIZE if mode == "max" else StudyDirection.MINIMIZE
    return optuna.create_study(
        study_name=run, storage=storage, direction=direction, load_if_exists=True
    )


def all_trials(studies: dict[str, optuna.Study]) -> list[optuna.trial.FrozenTrial]:
    """Every trial of every cell study."""
    return [t for study in studies.values() for t in study.get_trials(deepcopy=False)]
