"""``clipstudy report RUN_DIR``: report.html and report.json from the sweep and confirmation
tables; the verdict and key figures go into the run's overview study and a note of each cell's
confirmation into that cell's study, for the dashboard."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import optuna
import pandas as pd

from analysis.comparison_report import build_report, render_html, to_json
from study.config import StudyConfig
from study.confirm import PLAN_FILE
from study.errors import UsageError
from study.storage import open_storage
from study.studies import load_cell_studies, overview_study

DASHBOARD_FIGURES = ("Per-seed results", "Paired differences", "Loss x optimizer means")


def complete_cells(confirm: pd.DataFrame, seeds: list[int], max_epochs: int) -> list[str]:
    """Cells whose runs reached ``max_epochs`` for every one of ``seeds`` (a paired design
    needs every seed in every cell compared)."""
    final = confirm[confirm["epoch"] == max_epochs]
    reached = final.groupby("cell")["seed"].agg(set)
    return sorted(cell for cell, done in reached.items() if set(seeds) <= done)


def describe_left_out(cells: list[str], failed: list[dict]) -> str:
    """The cells left out of the tests, each with its failed seeds and the reason."""
    reasons: dict[str, list[str]] = {}
    for run in failed:
        reasons.setdefault(run["cell"], []).append(f"seed {run['seed']}: {run['reason']}")
    return "; ".join(f"{c} ({', '.join(reasons.get(c, ['did not finish']))})" for c in cells)


def _setup(cfg: StudyConfig, confirm: pd.DataFrame, sweep: pd.DataFrame, plan: dict) -> dict:
    import ray
    import torch

    planned = sorted(plan.get("configs", {}))
    left_out = [cell for cell in planned if cell not in set(confirm["cell"])]
    return {
        "cells": ", ".join(sorted(confirm["cell"].unique())),
        "cells not confirmed (no full-budget trial in the sweep)": ", ".join(
            plan.get("missing", [])
        )
        or "none",
        "cells left out (a confirmation run failed or did not finish)": describe_left_out(
            left_out, plan.get("failed", [])
        )
        or "none",
        "seeds per cell": str(confirm.groupby("cell")["seed"].nunique().min()),
        "epoch budget": str(cfg.scheduler.max_epochs),
        "sweep": f"{sweep['trial_id'].nunique()} trials: {cfg.study.trials_per_cell} per cell, "
        f"one Optuna study and one ASHA (grace {cfg.scheduler.grace_period}, reduction "
        f"{cfg.scheduler.reduction_factor}) per cell",
        "primary metric": f"{cfg.study.metric} ({cfg.study.mode})",
        "data": cfg.trial.data.dir,
        "hardware": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{cfg.resources.cpus_per_trial} CPU / {cfg.resources.gpus_per_trial} GPU per trial",
        "versions": f"python {platform.python_version()}, torch {torch.__version__}, "
        f"ray {ray.__version__}, optuna {optuna.__version__}",
    }


def write_report(cfg: StudyConfig, *, baseline: str | None = None) -> Path:
    """Write ``report.html`` and ``report.json`` into the run directory; returns the HTML path.

    Only cells whose confirmation runs all reached the full budget enter the tests; the others
    are named in the setup with their failed seeds.
    """
    confirm_path, sweep_path = cfg.run_dir / "confirm.parquet", cfg.run_dir / "trials.parquet"
    if not confirm_path.is_file():
        raise UsageError(f"{cfg.run_dir} has no confirm.parquet; run `clipstudy confirm` first")
    confirm = pd.read_parquet(confirm_path)
    plan_file = cfg.run_dir / PLAN_FILE
    plan = json.loads(plan_file.read_text()) if plan_file.is_file() else {}
    seeds = list(range(plan["seeds"])) if "seeds" in plan else sorted(confirm["seed"].unique())
    kept = complete_cells(confirm, seeds, cfg.scheduler.max_epochs)
    confirm = confirm[confirm["cell"].isin(kept) & confirm["seed"].isin(seeds)]
    failed = plan.get("failed", [])
    if len(kept) < 2 or len(seeds) < 2:
        why = f" ({len(failed)} run(s) failed: see {PLAN_FILE})" if failed else ""
        raise UsageError(
            f"the report compares at least 2 cells over at least 2 seeds, and {len(kept)} "
            f"cell(s) have complete runs for {len(seeds)} seed(s){why}; run `clipstudy confirm "
            "--seeds K` with K >= 2 on a sweep with 2+ COMPLETE cells (or --resume it)"
        )
    if baseline is not None and baseline not in kept:
        raise UsageError(
            f"--baseline {baseline!r} is not among the cells compared ({', '.join(kept)})"
        )
    sweep = pd.read_parquet(sweep_path)
    storage = open_storage(cfg.storage_url)
    studies = load_cell_studies(storage, cfg.study.name)
    report = build_report(
        confirm,
        sweep,
        primary=cfg.study.metric,
        mode=cfg.study.mode,
        max_epochs=cfg.scheduler.max_epochs,
        baseline=baseline,
        studies=studies,
    )
    page = render_html(
        report, title=f"clipstudy report: {cfg.study.name}", setup=_setup(cfg, confirm, sweep, plan)
    )
    html_path = cfg.run_dir / "report.html"
    html_path.write_text(page)
    (cfg.run_dir / "report.json").write_text(to_json(report))
    _push_to_dashboard(cfg, report, storage, studies, len(seeds))
    return html_path


def _push_to_dashboard(
    cfg: StudyConfig, report, storage: optuna.storages.BaseStorage, studies: dict, n_seeds: int
) -> None:
    """The verdict as the note of the run's overview study, the key figures as its dashboard
    plots, and in each cell's study a note of what its confirmation gave."""
    from optuna_dashboard import save_note, save_plotly_graph_object

    study = overview_study(storage, cfg.study.name, cfg.study.mode)
    save_note(
        study,
        "## Verdict (confirmation runs)\n\n"
        + "\n".join(f"- {line}" for line in [*report.summary, *report.verdict]),
    )
    for name, figure in report.figures.items():
        if name.startswith(DASHBOARD_FIGURES):
            key = "".join(c if c.isalnum() else "-" for c in name.lower())[:40]
            save_plotly_graph_object(study, figure, graph_object_id=key)
    means = report.data["means"]
    for cell, cell_study in studies.items():
        outcome = (
            f"its best COMPLETE trial, retrained over {n_seeds} seeds, has mean "
            f"{cfg.study.metric} {means[cell]:.2f}"
            if cell in means
            else "it is not in the comparison (no full-budget trial, or a failed run)"
        )
        save_note(
            cell_study,
            f"## Confirmation\n\n{cell}: {outcome}. The verdict is in study `{cfg.study.name}`.",
        )
