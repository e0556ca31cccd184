"""Harness overhead of a sweep: wall time against the time the trials themselves ran.

Runs the demo study through the real CLI path (Ray Tune + Optuna + ASHA) on a fresh built-in
dataset, once with actor reuse and once without, and prints for each: the sweep's wall time,
the sum of the trials' own times (Ray's ``time_this_iter_s`` summed over every epoch of every
trial), the ideal wall time (that sum / concurrency) and the overhead per trial.
Usage: python benchmarks/sweep_overhead.py [--trials-per-cell 2] [--epochs 2]  (4 demo cells)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from _demo import DEMO_TOML, synthesise

from study.config import load_config
from study.runner import run_sweep


def measure(data: Path, runs: Path, *, reuse: bool, trials_per_cell: int, epochs: int) -> dict:
    cfg = load_config(
        DEMO_TOML,
        [
            f'data.dir="{data}"',
            f'study.runs_dir="{runs}"',
            f"study.trials_per_cell={trials_per_cell}",
            f"scheduler.max_epochs={epochs}",
            f"resources.reuse_actors={'true' if reuse else 'false'}",
        ],
        name=f"overhead-reuse-{reuse}",
    )
    start = time.perf_counter()
    outcome = run_sweep(cfg)
    wall = time.perf_counter() - start
    table = pd.read_parquet(outcome.run_dir / "trials.parquet")
    trial_s = table["time_this_iter_s"].sum()
    ideal = trial_s / cfg.resources.max_concurrent
    return {
        "reuse_actors": reuse,
        "wall_s": wall,
        "sum_trial_s": trial_s,
        "ideal_wall_s": ideal,
        "wall/ideal": wall / ideal,
        "overhead_per_trial_s": (wall - ideal) * cfg.resources.max_concurrent / cfg.num_trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-per-cell", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = synthesise(Path(tmp) / "synth")
        rows = [
            measure(
                data,
                Path(tmp) / "runs",
                reuse=reuse,
                trials_per_cell=args.trials_per_cell,
                epochs=args.epochs,
            )
            for reuse in (True, False)
        ]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
