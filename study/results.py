"""Tidy results of a sweep: one row per trial x epoch, joined with the Optuna record."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import pandas as pd
from optuna.trial import TrialState

from study.studies import all_trials
from trainables.metric_names import EPOCH_METRICS, TIMINGS

if TYPE_CHECKING:
    from study.epoch_log import TrialHistory

# the trial's per-epoch metrics and timings, and Ray's wall time per report
METRIC_COLUMNS = [*EPOCH_METRICS, *TIMINGS, "time_this_iter_s"]


def trials_table(
    histories: Iterable[TrialHistory], studies: dict[str, optuna.Study]
) -> pd.DataFrame:
    """One row per (trial, epoch): the trial's cell, Optuna number (within the cell's study)
    and state, its metrics and its params.

    ``histories`` are the sweep's epoch log (:func:`study.epoch_log.read_epoch_log`);
    ``studies`` maps cell -> study. A Ray trial that no Optuna trial names is left out: one a
    kill lost before Ray's snapshot held it, whose Optuna trial ``--resume`` asked again
    under a new Ray trial (:func:`study.optuna_bridge.requeue_lost_trials`); its epochs
    before the kill were never part of the study.
    """
    by_ray_id = {
        t.user_attrs.get("ray_trial_id"): t
        for study in studies.values()
        for t in study.get_trials(deepcopy=False)
    }
    frames = []
    for trial in histories:
        ot_trial = by_ray_id.get(trial.trial_id)
        if ot_trial is None:
            continue
        frame = trial.epochs.copy()
        frame.insert(0, "trial_id", trial.trial_id)
        frame.insert(1, "cell", trial.config["cell"])
        frame.insert(2, "number", ot_trial.number)
        frame.insert(3, "state", ot_trial.state.name)
        for key, value in sorted(trial.config.items()):
            if key != "cell":
                frame[key] = value
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["trial_id", "cell", "number", "state", *METRIC_COLUMNS])
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["cell", "number", "epoch"], ignore_index=True)


@dataclass(frozen=True)
class CellBest:
    """The best COMPLETE (full-budget) trial of a cell."""

    value: float
    number: int
    ray_trial_id: str | None
    params: dict


@dataclass(frozen=True)
class SweepSummary:
    """What a user wants to know when a sweep ends: trial counts per state, and per cell the
    best full-budget trial (``None`` when the cell has no COMPLETE trial)."""

    counts: dict[str, int]
    best: dict[str, CellBest | None]

    def lines(self, metric: str) -> list[str]:
        counts = ", ".join(f"{state} {n}" for state, n in self.counts.items())
        out = [f"trials: {counts}", f"best full-budget trial of each cell ({metric}):"]
        width = max(len(cell) for cell in self.best) if self.best else 0
        for cell, best in self.best.items():
            if best is None:
                out.append(f"  {cell:{width}s}  none: no trial ran its full epoch budget")
                continue
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in best.params.items() if k != "cell")
            out.append(
                f"  {cell:{width}s}  {best.value:6.2f}  trial {best.number} "
                f"(ray {best.ray_trial_id})  {params}"
            )
        return out


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summarize(studies: dict[str, optuna.Study], cells: list[str]) -> SweepSummary:
    """Counts per state over all cell studies, and the best COMPLETE trial of each cell."""
    trials = all_trials(studies)
    counts = {
        state.name: sum(t.state == state for t in trials)
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    }
    best: dict[str, CellBest | None] = {}
    for cell in cells:
        study = studies.get(cell)
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if study else []
        if study is None or not complete:
            best[cell] = None
            continue
        top = study.best_trial
        best[cell] = CellBest(
            float(top.values[0]), top.number, top.user_attrs.get("ray_trial_id"), dict(top.params)
        )
    return SweepSummary(counts, best)


def write_trials(table: pd.DataFrame, path: Path) -> Path:
    table.to_parquet(path, index=False)
    return path
