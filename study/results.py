"""Tidy results of a sweep: one row per trial x epoch, joined with the Optuna record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

METRIC_COLUMNS = [
    "epoch",
    "train_loss",
    "txt_r1",
    "txt_r5",
    "txt_r10",
    "img_r1",
    "img_r5",
    "img_r10",
    "txt_r_mean",
    "img_r_mean",
    "r_mean",
    "zs_top1",
    "zs_top3",
    "zs_top5",
    "zs_top10",
    "time_data_s",
    "time_step_s",
    "time_views_s",
    "time_eval_s",
    "time_this_iter_s",
]


def trials_table(results, study: optuna.Study) -> pd.DataFrame:
    """One row per (trial, epoch) with the trial's params and its Optuna number and state.

    ``results`` is a Ray ``ResultGrid``; trials that reported nothing have no rows.
    """
    by_ray_id = {t.user_attrs.get("ray_trial_id"): t for t in study.get_trials(deepcopy=False)}
    frames = []
    for result in results:
        history = result.metrics_dataframe
        if history is None or history.empty:
            continue
        ray_id = result.metrics.get("trial_id")
        ot_trial = by_ray_id.get(ray_id)
        frame = history[[c for c in METRIC_COLUMNS if c in history.columns]].copy()
        frame.insert(0, "trial_id", ray_id)
        frame.insert(1, "number", ot_trial.number if ot_trial else -1)
        frame.insert(2, "state", ot_trial.state.name if ot_trial else "UNKNOWN")
        for key, value in sorted(result.config.items()):
            frame[key] = value
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["trial_id", "number", "state", *METRIC_COLUMNS])
    return pd.concat(frames, ignore_index=True).sort_values(["number", "epoch"], ignore_index=True)


@dataclass(frozen=True)
class SweepSummary:
    """What a user wants to know when a sweep ends."""

    counts: dict[str, int]
    best_value: float | None
    best_params: dict
    best_number: int | None
    best_ray_trial_id: str | None = None

    def lines(self, metric: str) -> list[str]:
        counts = ", ".join(f"{state} {n}" for state, n in self.counts.items())
        out = [f"trials: {counts}"]
        if self.best_number is None:
            out.append("best: no trial ran its full epoch budget (no COMPLETE trial)")
        else:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in self.best_params.items())
            out.append(
                f"best: trial {self.best_number} (ray {self.best_ray_trial_id}), "
                f"{metric} = {self.best_value:.2f}"
            )
            out.append(f"      {params}")
        return out


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def summarize(study: optuna.Study) -> SweepSummary:
    """Counts per state and the best COMPLETE trial (full budget only)."""
    trials = study.get_trials(deepcopy=False)
    counts = {
        state.name: sum(t.state == state for t in trials)
        for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        return SweepSummary(counts, None, {}, None)
    best = study.best_trial
    return SweepSummary(
        counts, best.value, dict(best.params), best.number, best.user_attrs.get("ray_trial_id")
    )


def write_trials(table: pd.DataFrame, path: Path) -> Path:
    table.to_parquet(path, index=False)
    return path
