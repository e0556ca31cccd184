"""Report generation time at scale: a sweep of 500 trials and 24 cells x 10 seeds.

Builds synthetic tables of that size (the shapes of trials.parquet and confirm.parquet) and
one in-memory Optuna study per cell holding that cell's trials, then times the tests +
figures (``build_report``, importance included) and the HTML rendering. Goal: under 30 s on 2
cores. Usage: python benchmarks/report_time.py [--trials 500] [--cells 24] [--seeds 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from analysis.comparison_report import build_report, render_html

LOSSES = ("clip", "sogclr", "isogclr", "cyclip", "amclr", "xamclr")
OPTIMIZERS = ("adamw", "adamp", "lion", "sgd_nesterov")
EPOCHS = 8


def confirm_table(cells: int, seeds: int, rng: np.random.Generator) -> pd.DataFrame:
    pairs = [(loss, opt) for loss in LOSSES for opt in OPTIMIZERS][:cells]
    rows = []
    for index, (loss, optimizer) in enumerate(pairs):
        for seed in range(seeds):
            for epoch in range(1, EPOCHS + 1):
                value = 40 + index * 0.3 + epoch * 5 + rng.normal(0, 2)
                rows.append(
                    {
                        "cell": f"{loss}:{optimizer}",
                        "loss": loss,
                        "optimizer": optimizer,
                        "seed": seed,
                        "epoch": epoch,
                        "r_mean": value,
                        "zs_top1": value / 3,
                        "zs_top5": value / 2,
                        "txt_r1": value / 4,
                        "img_r1": value / 5,
                    }
                )
    return pd.DataFrame(rows)


def sweep_table(trials: int, cells: int, rng: np.random.Generator) -> pd.DataFrame:
    """Trials dealt round-robin to the cells; ``number`` counts within a cell's study."""
    pairs = [(loss, opt) for loss in LOSSES for opt in OPTIMIZERS][:cells]
    rows = []
    for index in range(trials):
        loss, optimizer = pairs[index % len(pairs)]
        epochs = int(rng.choice([2, 4, 8], p=[0.6, 0.25, 0.15]))
        state = "COMPLETE" if epochs == EPOCHS else "PRUNED"
        lr, weight_decay = 10 ** rng.uniform(-5, -1), 10 ** rng.uniform(-4, -0.5)
        for epoch in range(1, epochs + 1):
            rows.append(
                {
                    "trial_id": f"t{index}",
                    "cell": f"{loss}:{optimizer}",
                    "number": index // len(pairs),
                    "state": state,
                    "epoch": epoch,
                    "r_mean": rng.normal(40 + 4 * epoch, 5),
                    "loss": loss,
                    "optimizer": optimizer,
                    "lr": lr,
                    "weight_decay": weight_decay,
                }
            )
    return pd.DataFrame(rows)


def studies_of(sweep: pd.DataFrame) -> dict[str, optuna.Study]:
    """One in-memory study per cell with its trials (PRUNED ones without a value)."""
    distributions = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "weight_decay": FloatDistribution(1e-4, 10**-0.5, log=True),
    }
    final = sweep.sort_values("epoch").groupby("trial_id").last()
    studies = {}
    for cell, rows in final.sort_values("number").groupby("cell"):
        study = studies[cell] = optuna.create_study(direction="maximize")
        for row in rows.itertuples():
            complete = row.state == "COMPLETE"
            study.add_trial(
                create_trial(
                    params={"lr": row.lr, "weight_decay": row.weight_decay},
                    distributions=distributions,
                    value=row.r_mean if complete else None,
                    state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                )
            )
    return studies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--cells", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    confirm = confirm_table(args.cells, args.seeds, rng)
    sweep = sweep_table(args.trials, args.cells, rng)
    studies = studies_of(sweep)

    start = time.perf_counter()
    report = build_report(
        confirm, sweep, primary="r_mean", mode="max", max_epochs=EPOCHS, studies=studies
    )
    built = time.perf_counter()
    page = render_html(report, title="scale", setup={"cells": args.cells})
    done = time.perf_counter()
    tests = report.primary.n_tests + len(report.secondary)
    print(f"{args.trials} sweep trials, {args.cells} cells x {args.seeds} seeds, {tests} tests")
    print(f"  tests + figures  {built - start:6.2f} s")
    print(f"  HTML             {done - built:6.2f} s  ({len(page) / 1e6:.1f} MB)")
    print(f"  total            {done - start:6.2f} s  (goal < 30 s)")


if __name__ == "__main__":
    main()
