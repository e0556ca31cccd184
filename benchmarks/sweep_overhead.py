"""Harness overhead of a sweep: wall time against the time the trials themselves ran, where the
rest goes, and whether the cost per trial stays flat as the study grows.

Part 1 runs the demo study through the real CLI path (Ray Tune + Optuna + ASHA) on a fresh
built-in dataset, with actor reuse on and off, and prints: the sweep's wall time (Ray already
started), the sum of the trials' own times (Ray's ``time_this_iter_s`` over every epoch of
every trial: it includes each trial's data loading, tokenizer and model building and its
checkpoint writes), wall/ideal (ideal = that sum / concurrency) and the seconds per trial
beyond the trial ((wall - ideal) x concurrency / trials); and the same against the trials' work
alone (train + eval, without their set-up and checkpoints), the issue's "beyond the trial's own
work". Goal at 2 concurrent trials: wall <= 1.15 x ideal and <= 0.2 s per trial beyond.

Part 2, the profile of the reuse-on sweep: Ray's start; what a trial actor imports when it
starts (timed in a fresh process before the sweeps, on idle cores); the sweep driver's own
work, from ``cProfile`` of the driver (set-up of the cell studies, the searchers' Optuna storage
round-trips, ASHA, Tune's loggers and experiment checkpoints, the progress printer, the
trials table); and, inside the trials' own time, what the trial reports about itself:
setup before the first epoch (data loading, tokenizer, model: ``time_this_iter_s`` of epoch 1
minus its train and eval times), per-epoch checkpoint plus report, training and evaluation;
the cost of starting an actor per trial (overhead per trial with reuse off minus on); and the
slots' idle time (slots x wall minus the trials' run time) split by when it falls: before the
first trial, at hand-overs between trials, in the tail, after the last trial ended.

Part 3 runs trivial trials (no training: a few reports, checkpoints as a real trial) through the
same harness at 48 and 200 trials and prints the overhead per trial, which must stay flat; and
the searcher alone (the cell studies' sampling and SQLite round-trips, no Ray) at 48 and 200
trials, per trial overall and over the last quarter (an RDB that slows with the trial count
would show there).

Usage: python benchmarks/sweep_overhead.py [--trials-per-cell 2] [--epochs 2] [--no-growth]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _demo import DEMO_TOML, synthesise
from ray.tune.execution.tune_controller import TuneController
from ray.tune.logger.logger import LoggerCallback

import study.trainable
from study import results, runner
from study.config import load_config
from study.epoch_log import epoch_log_path
from study.per_cell import PerCellASHA, PerCellSearch
from study.progress import ProgressPrinter
from study.ray_session import start_ray
from study.runner import run_sweep

WORK_TIMES = ["time_data_s", "time_step_s", "time_eval_s"]  # a trial's own work, per epoch

# profile rows: label -> the driver functions whose cumulative time is the item
DRIVER_ITEMS = {
    "checks and image cache (before Ray Tune)": [
        runner.check_model,
        runner.check_data,
        runner.check_local_resources,
        runner.prepare_data,
    ],
    "sweep set-up (cell studies, Tuner)": [runner._tuner],
    "dashboard note of the run": [runner._describe_run],
    "searcher: suggest (Optuna ask)": [PerCellSearch.suggest],
    "searcher: results (Optuna report)": [PerCellSearch.on_trial_result],
    "searcher: completion (Optuna tell)": [PerCellSearch.on_trial_complete],
    "searcher: save (experiment state)": [PerCellSearch.save],
    "ASHA decisions": [PerCellASHA.on_trial_result],
    "Tune loggers (json/csv/tensorboard)": [LoggerCallback.on_trial_result],
    "Tune experiment checkpoints": [TuneController.checkpoint],
    "progress printer": [ProgressPrinter.on_trial_result, ProgressPrinter.on_trial_complete],
    "trials table (after fit)": [results.trials_table],
}


# what a trial actor imports once Ray's worker runs: the trainable's mixin, Ray's function
# trainable, the trainable itself (with torch and the trial's modules)
ACTOR_IMPORTS = "study.checkpoint_restore, ray.tune.trainable.function_trainable, study.trainable"


def actor_import_s() -> float:
    """Seconds a fresh process takes to import :data:`ACTOR_IMPORTS` after ``ray``, as a
    trial actor does when it starts (run on otherwise idle cores)."""
    code = (
        f"import time, ray; start = time.perf_counter(); import {ACTOR_IMPORTS}; "
        "print(time.perf_counter() - start)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return float(result.stdout)


def sweep_config(data: Path, runs: Path, name: str, *, reuse: bool, tpc: int, epochs: int):
    return load_config(
        DEMO_TOML,
        [
            f'data.dir="{data}"',
            f'study.runs_dir="{runs}"',
            f"study.trials_per_cell={tpc}",
            f"scheduler.max_epochs={epochs}",
            f"scheduler.grace_period={min(epochs, 2)}",
            f"resources.reuse_actors={'true' if reuse else 'false'}",
        ],
        name=name,
    )


def timed_sweep(cfg, profile: cProfile.Profile | None = None):
    """(wall seconds, outcome, (start, end) on ``time.time()``'s clock) of ``run_sweep(cfg)``;
    progress lines are swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        start, clock = time.perf_counter(), time.time()
        if profile:
            profile.enable()
        outcome = run_sweep(cfg)
        if profile:
            profile.disable()
        return time.perf_counter() - start, outcome, (clock, time.time())


def idle_slots(slots: int, run_dir: Path, span: tuple[float, float]) -> dict[str, float]:
    """Idle slot-seconds of a sweep over ``span`` (slots x wall minus the time trials ran), by
    when: before the first trial starts, while trials hand their slots over (first start to
    last start), in the tail (after the last start: fewer trials left than slots) and after the
    last trial ended (the driver's wrap-up). A trial runs from its first result's arrival minus
    that result's ``time_this_iter_s`` to its last result's arrival (the driver's epoch log)."""
    log = pd.read_json(epoch_log_path(run_dir, "sweep"), lines=True)
    first, last = log.groupby("trial_id").first(), log.groupby("trial_id").last()
    starts, ends = first["received_s"] - first["time_this_iter_s"], last["received_s"]
    edges = {
        "before the first trial": (span[0], starts.min()),
        "handovers (first to last trial start)": (starts.min(), starts.max()),
        "tail (after the last trial start)": (starts.max(), ends.max()),
        "wrap-up (after the last trial end)": (ends.max(), span[1]),
    }
    return {
        f"idle slot-s: {label}": _idle(slots, starts.tolist(), ends.tolist(), a, b)
        for label, (a, b) in edges.items()
    }


def _idle(slots: int, starts: list[float], ends: list[float], a: float, b: float) -> float:
    """The integral over [a, b] of slots minus the trials running (intervals starts..ends)."""
    busy = sum(max(0.0, min(e, b) - max(s, a)) for s, e in zip(starts, ends, strict=True))
    return slots * max(0.0, b - a) - busy


def overhead_row(cfg, wall: float, table: pd.DataFrame, label: str) -> dict:
    """Wall time against the ideal (the trials' own time / concurrency), two ways: the trials'
    time as Ray counts it (``time_this_iter_s``: with their set-up and checkpoints) and their
    work alone (train + eval, the ``time_*_s`` a trial reports; 0 for trivial trials)."""
    slots, trials = cfg.resources.max_concurrent, cfg.num_trials
    trial_s = table["time_this_iter_s"].sum()
    work_s = table.reindex(columns=WORK_TIMES, fill_value=0.0).sum().sum()
    ideal, ideal_work = trial_s / slots, work_s / slots
    return {
        "sweep": label,
        "trials": trials,
        "wall_s": wall,
        "sum_trial_s": trial_s,
        "wall/ideal": wall / ideal,
        "s/trial beyond trial": (wall - ideal) * slots / trials,
        "sum_work_s": work_s,
        "wall/ideal_work": wall / ideal_work if work_s else float("nan"),
        "s/trial beyond work": (wall - ideal_work) * slots / trials,
    }


def driver_profile(profile: cProfile.Profile) -> dict[str, float]:
    """Cumulative seconds of each :data:`DRIVER_ITEMS` function in ``profile``."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    cumulative = {key: row[3] for key, row in stats.items()}
    return {
        label: sum(
            cumulative.get((f.__code__.co_filename, f.__code__.co_firstlineno, f.__name__), 0.0)
            for f in functions
        )
        for label, functions in DRIVER_ITEMS.items()
    }


def trial_profile(table: pd.DataFrame) -> dict[str, float]:
    """Seconds inside the trials' own time: set-up before epoch 1, checkpoint + report, and
    the work itself (training, evaluation)."""
    work = table[WORK_TIMES].sum(axis=1)
    rest = table["time_this_iter_s"] - work
    first = table["epoch"] == table.groupby("trial_id")["epoch"].transform("min")
    return {
        "in trials: set-up before epoch 1 (data, tokenizer, model)": rest[first].sum(),
        "in trials: checkpoint + report, later epochs": rest[~first].sum(),
        "in trials: training (the work)": table[["time_data_s", "time_step_s"]].sum().sum(),
        "in trials: evaluation (the work)": table["time_eval_s"].sum(),
    }


def trivial_trial(config: dict, base: dict) -> None:
    """A trial without training: ``max_epochs`` reports of a made-up r_mean, with a
    checkpoint where the trial config says (the rungs and the last epoch), as
    :func:`study.trainable.train_clip` reports."""
    from ray import tune

    # TrialConfig.checkpoints_after, without importing torch into the trials' own time
    epochs = base["epochs"]
    checkpointed = {*(base["checkpoint_epochs"] or range(1, epochs + 1)), epochs}
    for epoch in range(1, epochs + 1):
        metrics = {"epoch": epoch, "r_mean": 100 * config["lr"] * epoch, "train_loss": 1.0}
        if epoch not in checkpointed:
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "state.txt").write_text(str(epoch))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def growth_rows(data: Path, runs: Path) -> list[dict]:
    """Trivial trials at 48 and 200 trials (12 and 50 per demo cell, 2 epochs)."""
    real = study.trainable.train_clip
    study.trainable.train_clip = trivial_trial
    try:
        rows = []
        for tpc in (12, 50):
            cfg = sweep_config(data, runs, f"trivial-{tpc}", reuse=True, tpc=tpc, epochs=2)
            wall, outcome, _ = timed_sweep(cfg)
            table = pd.read_parquet(outcome.run_dir / "trials.parquet")
            rows.append(overhead_row(cfg, wall, table, "trivial trials"))
        return rows
    finally:
        study.trainable.train_clip = real


def searcher_growth(data: Path, runs: Path) -> list[dict]:
    """The searcher alone (no Ray): per-trial seconds of suggest + 2 results + completion
    over the sweep's SQLite study, at 48 and 200 trials, overall and over the last quarter."""
    rows = []
    for tpc in (12, 50):
        cfg = sweep_config(data, runs, f"searcher-{tpc}", reuse=True, tpc=tpc, epochs=2)
        cfg.run_dir.mkdir(parents=True)
        search, seconds = runner.build_searcher(cfg), []
        for number in range(cfg.num_trials):
            start = time.perf_counter()
            config = search.suggest(f"t{number}")
            assert isinstance(config, dict)
            for epoch in (1, 2):
                search.on_trial_result(f"t{number}", {"epoch": epoch, "r_mean": config["lr"]})
            search.on_trial_complete(f"t{number}", {"epoch": 2, "r_mean": config["lr"]})
            seconds.append(time.perf_counter() - start)
        quarter = seconds[-len(seconds) // 4 :]
        rows.append(
            {
                "trials": cfg.num_trials,
                "searcher_s_per_trial": sum(seconds) / len(seconds),
                "last_quarter_s_per_trial": sum(quarter) / len(quarter),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials-per-cell", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-growth", action="store_true", help="skip the 48/200 trivial part")
    args = parser.parse_args()
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    with tempfile.TemporaryDirectory() as tmp:
        data = synthesise(Path(tmp) / "synth")
        runs = Path(tmp) / "runs"
        actor_imports = actor_import_s()
        start = time.perf_counter()
        start_ray(None)
        ray_start = time.perf_counter() - start
        rows, profile = [], cProfile.Profile()
        for reuse in (True, False):
            cfg = sweep_config(
                data,
                runs,
                f"overhead-reuse-{reuse}",
                reuse=reuse,
                tpc=args.trials_per_cell,
                epochs=args.epochs,
            )
            wall, outcome, span = timed_sweep(cfg, profile if reuse else None)
            table = pd.read_parquet(outcome.run_dir / "trials.parquet")
            rows.append(overhead_row(cfg, wall, table, f"demo, reuse_actors={reuse}"))
            if reuse:
                items = {
                    "Ray start (once per sweep)": ray_start,
                    "a trial actor's imports (fresh process, idle cores)": actor_imports,
                    **driver_profile(profile),
                }
                items |= trial_profile(table)
                slots = cfg.resources.max_concurrent
                items[f"wall - ideal ({slots} slots; ideal = trials' own time / slots)"] = (
                    wall - table["time_this_iter_s"].sum() / slots
                )
                items |= idle_slots(slots, outcome.run_dir, span)
        on, off = rows[0], rows[1]
        items["actor start per trial (reuse off - on, per trial)"] = (
            off["s/trial beyond trial"] - on["s/trial beyond trial"]
        )
        if not args.no_growth:
            rows += growth_rows(data, runs)
        searcher_rows = searcher_growth(data, runs)
    fmt = {"float_format": lambda v: f"{v:.2f}", "index": False}
    print(pd.DataFrame(rows).to_string(**fmt))
    print("\nprofile of the reuse_actors=True sweep (seconds; driver items from cProfile):")
    print(pd.Series(items, name="s").to_frame().to_string(float_format=lambda v: f"{v:.2f}"))
    print("\nthe searcher alone (default sampler, SQLite; suggest + 2 results + completion):")
    print(pd.DataFrame(searcher_rows).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
