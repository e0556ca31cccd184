"""Confirmation: the best full-budget config of every (loss, optimizer) cell, retrained with
common seeds 0..K-1 at the full epoch budget, as Ray Tune trials.

The seed fixes initialisation, data order and augmentation identically in every cell
(common random numbers), so results are paired by seed. Only COMPLETE sweep trials (full
budget) are candidates: ASHA's partial-budget values are not comparable. A cell with no
COMPLETE trial is reported as missing, never dropped silently. Results go to
``confirm.parquet`` (one row per cell x seed x epoch) once every run finished; the plan, the
seeds and the failed runs (cell, seed, reason) to ``confirm_plan.json``. An interrupted
confirmation writes no table and continues with ``--resume``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import optuna
import pandas as pd
from optuna.trial import TrialState

from study.checks import check_data, check_local_resources, check_model
from study.config import StudyConfig
from study.data_cache import prepare_data, with_image_cache
from study.epoch_log import EpochLog, TrialHistory, epoch_log_path, read_epoch_log
from study.errors import UsageError
from study.preflight import run_preflight
from study.ray_session import (
    can_restore,
    experiment_dir,
    experiment_exists,
    interrupted,
    new_tuner,
    restored_tuner,
    start_ray,
)
from study.results import METRIC_COLUMNS
from study.storage import existing_storage_url, open_storage
from study.studies import load_cell_studies

EXPERIMENT = "confirm"
PLAN_FILE = "confirm_plan.json"  # the configs retrained and the cells left out


@dataclass(frozen=True)
class ConfirmPlan:
    """The cells to retrain (cell -> params of its best COMPLETE trial) and those missing."""

    best: dict[str, dict]
    missing: list[str]


def plan_confirmation(studies: dict[str, optuna.Study], cells: list[str]) -> ConfirmPlan:
    """Best COMPLETE trial of each of ``cells`` (cell -> its study in ``studies``)."""
    best: dict[str, dict] = {}
    for cell in cells:
        study = studies.get(cell)
        if study and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            loss, optimizer = cell.split(":")
            params = {k: v for k, v in study.best_trial.params.items() if k != "cell"}
            best[cell] = {**params, "loss": loss, "optimizer": optimizer}
    return ConfirmPlan(best, [cell for cell in cells if cell not in best])


def _cell(params: dict) -> str:
    """The "loss:optimizer" cell of a confirmation run's params."""
    return f"{params['loss']}:{params['optimizer']}"


def confirmation_table(histories: Iterable[TrialHistory]) -> pd.DataFrame:
    """One row per (cell, seed, epoch) from the confirmation's epoch log."""
    frames = []
    for trial in histories:
        params = trial.config["params"]
        frame = trial.epochs.copy()
        frame.insert(0, "cell", _cell(params))
        frame.insert(1, "loss", params["loss"])
        frame.insert(2, "optimizer", params["optimizer"])
        frame.insert(3, "seed", params["seed"])
        frame.insert(4, "trial_id", trial.trial_id)
        frames.append(frame)
    if not frames:
        columns = ["cell", "loss", "optimizer", "seed", "trial_id", *METRIC_COLUMNS]
        return pd.DataFrame(columns=columns)
    table = pd.concat(frames, ignore_index=True)
    return table.sort_values(["cell", "seed", "epoch"], ignore_index=True)


@dataclass(frozen=True)
class ConfirmOutcome:
    """The plan, the per-epoch table (``None`` when interrupted: nothing was written), the
    runs that failed (cell, seed, reason) and whether the run was interrupted."""

    plan: ConfirmPlan
    table: pd.DataFrame | None
    failed: list[dict]
    interrupted: bool


def failed_runs(results) -> list[dict]:
    """Cell, seed and error message of every confirmation trial that raised."""
    failed = []
    for result in results:
        if result.error is not None:
            params = result.config["params"]
            lines = [line for line in str(result.error).splitlines() if line.strip()]
            failed.append(
                {
                    "cell": _cell(params),
                    "seed": params["seed"],
                    "reason": lines[-1].strip() if lines else type(result.error).__name__,
                }
            )
    return failed


def _planned(cfg: StudyConfig, seeds: int, cells: list[str] | None) -> ConfirmPlan:
    """The plan from the sweep's cell studies; UsageError when there is nothing to confirm."""
    if seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {seeds}")
    storage = open_storage(existing_storage_url(cfg.storage.optuna, cfg.run_dir))
    studies = load_cell_studies(storage, cfg.study.name)
    if not studies:
        raise UsageError(f"{cfg.run_dir} has no Optuna study; run the sweep first")
    unknown = sorted(set(cells or []) - set(cfg.cells))
    if unknown:
        raise UsageError(
            f"--cells: {unknown[0]!r} is not a cell of this study; choose among "
            f"{', '.join(cfg.cells)}"
        )
    plan = plan_confirmation(studies, cells or cfg.cells)
    if not plan.best:
        raise UsageError(
            f"no cell of {cfg.run_dir} has a COMPLETE (full-budget) trial to confirm "
            f"(missing: {', '.join(plan.missing)}); run a longer sweep"
        )
    return plan


def _resumed_plan(plan_file: Path, seeds: int, cells: list[str] | None) -> ConfirmPlan:
    """The plan of the interrupted confirmation in ``plan_file``: --resume continues it with
    the configs, cells and seeds it was started with."""
    if not plan_file.is_file():
        raise UsageError(f"{plan_file.parent} has no confirmation to resume; leave out --resume")
    record = json.loads(plan_file.read_text())
    if record["seeds"] != seeds:
        raise UsageError(
            f"the confirmation to resume was started with --seeds {record['seeds']}, not "
            f"{seeds}; pass --seeds {record['seeds']}"
        )
    planned = sorted([*record["configs"], *record["missing"]])
    if cells is not None and sorted(cells) != planned:
        raise UsageError(
            f"the confirmation to resume covers the cells {', '.join(planned)}; "
            "leave out --cells to resume it"
        )
    return ConfirmPlan(record["configs"], record["missing"])


def run_confirmation(
    cfg: StudyConfig,
    *,
    seeds: int,
    cells: list[str] | None = None,
    address: str | None = None,
    resume: bool = False,
) -> ConfirmOutcome:
    """Retrain every cell's best config for seeds 0..seeds-1 (see the module docstring).

    ``confirm_plan.json`` is written before training (so --resume knows the seeds), and
    ``confirm.parquet`` only once every run finished or failed.
    """
    plan_file = cfg.run_dir / PLAN_FILE
    if resume:
        plan = _resumed_plan(plan_file, seeds, cells)
    elif experiment_exists(cfg, EXPERIMENT):
        raise UsageError(
            f"{cfg.run_dir} already has a confirmation; pass --resume to continue it, or "
            f"delete {experiment_dir(cfg, EXPERIMENT)} and {plan_file.name} to start again"
        )
    else:
        plan = _planned(cfg, seeds, cells)
    check_model(cfg)
    check_data(cfg)
    if not address:  # a cluster's resources are checked by the preflight
        check_local_resources(cfg)
    # the sweep's image cache, reused (or rebuilt if the data changed)
    cfg = with_image_cache(cfg, prepare_data(cfg))
    start_ray(address)
    if address:
        run_preflight(cfg)
    from ray import tune

    from study.trainable import train_confirmation

    runs = [{**params, "seed": seed} for params in plan.best.values() for seed in range(seeds)]
    log = epoch_log_path(cfg.run_dir, EXPERIMENT)
    if resume and can_restore(cfg, EXPERIMENT):
        tuner = restored_tuner(cfg, EXPERIMENT, train_confirmation)
    else:
        for stale in (cfg.run_dir / "confirm.parquet", log):  # never mixed with new runs
            stale.unlink(missing_ok=True)
        tuner = new_tuner(
            cfg,
            EXPERIMENT,
            train_confirmation,
            param_space={"params": tune.grid_search(runs)},
            callbacks=[EpochLog(log)],
        )
    record = {"configs": plan.best, "missing": plan.missing, "seeds": seeds, "failed": []}
    plan_file.write_text(json.dumps(record, indent=2))
    results = tuner.fit()
    if interrupted(results, len(runs)):
        return ConfirmOutcome(plan, None, [], interrupted=True)
    failed = failed_runs(results)
    plan_file.write_text(json.dumps({**record, "failed": failed}, indent=2))
    table = confirmation_table(read_epoch_log(log))
    table.to_parquet(cfg.run_dir / "confirm.parquet", index=False)
    return ConfirmOutcome(plan, table, failed, interrupted=False)


def summary_lines(outcome: ConfirmOutcome, metric: str, path: Path) -> list[str]:
    """Final-epoch mean and spread of ``metric`` per cell, the failed runs and the cells left
    out."""
    lines = []
    table = outcome.table
    if table is not None and not table.empty:
        final = table[table["epoch"] == table.groupby(["cell", "seed"])["epoch"].transform("max")]
        stats = final.groupby("cell")[metric].agg(["mean", "std", "count"])
        for cell, row in stats.iterrows():
            lines.append(
                f"{cell:28s} {metric} {row['mean']:6.2f} ± {row['std']:5.2f}  "
                f"({int(row['count'])} seeds)"
            )
    for run in outcome.failed:
        lines.append(f"{run['cell']:28s} seed {run['seed']} FAILED: {run['reason']}")
    for cell in outcome.plan.missing:
        lines.append(f"{cell:28s} not confirmed: no COMPLETE (full-budget) trial in the sweep")
    lines.append(f"confirmation table: {path}")
    return lines
