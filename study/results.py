"""Tidy results of a sweep: one row per trial x epoch, joined with the Optuna record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from study.studies import all_trials
from trainables.metric_names import EPOCH_METRICS, TIMINGS

# the trial's per-epoch metrics and timings, and Ray's wall time per report
METRIC_COLUMNS = [*EPOCH_METRICS, *TIMINGS, "time_this_iter_s"]


def epoch_rows(history: pd.DataFrame) -> pd.DataFrame:
    """One row per epoch of a Ray trial's ``metrics_dataframe``, metric columns only.

    A resumed trial restarts from the checkpoint Ray's experiment state names, which can be
    older than the last row Ray wrote to the trial's progress file; the epochs after it are
    then reported twice. Training resumes exactly (same metrics), so the last report is kept.
    """
    rows = history[[c for c in METRIC_COLUMNS if c in history.columns]]
    return rows.drop_duplicates("epoch", keep="last").reset_index(drop=True)


def trials_table(results, studies: dict[str, optuna.Study]) -> pd.DataFrame:
    """One row per (trial, epoch): the trial's cell, Optuna number (within the cell's study)
    and state, its metrics and its params.

    ``results`` is a Ray ``ResultGrid``; ``studies`` maps cell -> study; trials that reported
    nothing have no rows.
    """
    by_ray_id = {
        t.user_attrs.get("ray_trial_id"): t
        for study in studies.values()
        for t in study.get_trials(deepcopy=False)
    }
    frames = []
    for result in results:
        history = result.metrics_dataframe
        if history is None or history.empty:
            continue
        ray_id = result.metrics.get("trial_id")
        ot_trial = by_ray_id.get(ray_id)
        frame = epoch_rows(history)
        frame.insert(0, "trial_id", ray_id)
        frame.insert(1, "cell", result.config["cell"])
        frame.insert(2, "number", ot_trial.number if ot_trial else -1)
        frame.insert(3, "state", ot_trial.state.name if ot_trial else "UNKNOWN")
        for key, value in sorted(result.config.items()):
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
