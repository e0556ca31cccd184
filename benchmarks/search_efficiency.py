"""Search efficiency: the best full-budget r_mean each sampler finds per trial-epoch spent.

Each sweep is driven in-process, without Ray's cluster, by the harness's own pieces: the
study file's per-cell searcher (:func:`study.runner.build_searcher`: one
``TruthfulOptunaSearch`` per cell with the ``[sampler]`` of the method) and per-cell ASHA
(:func:`study.runner.build_scheduler`), with real trials (``trainables.trial.run_trial``) on a
freshly synthesised built-in dataset. ``max_concurrent`` trials are in flight: a new trial is
suggested whenever one finishes, while the other is still RUNNING in its Optuna study (what
``constant_liar`` sees); in-flight trials run one after the other, so the figures are
deterministic. The trial seed is fixed, so a config always gives the same curve and the
sweeps of one sweep seed differ only in what their samplers chose.

Methods: ``random`` (random search), ``tpe-10`` (TPE with Optuna's default 10 start-up
trials: clipstudy before issue 13; when ``trials_per_cell`` <= 10 it draws exactly what
``random`` draws, as tests/test_samplers.py proves, so its sweeps are not run again but
copied from ``random``), ``tpe`` (the default of
:mod:`study.samplers`) and ``gp`` (GPSampler), all under ASHA; and the reference, a grid over
lr x temperature x weight_decay run to the full budget without early stopping.

Printed: the mean over sweep seeds of the best full-budget r_mean reached after 10%, 20%,
35% and 100% of the grid's trial-epochs; each method's trial-epochs; the goal check (the
default within 1 point of the grid's best at <= 35% of its trial-epochs); and
``analysis.compare_methods`` of the best at equal budget (per seed, the smallest budget any
method spent), paired by sweep seed, against ``random``.

    python benchmarks/search_efficiency.py --small      # 1 cell, 1024 pairs, 4 epochs, 5 seeds
    python benchmarks/search_efficiency.py              # 2 demo cells, default data, 6 epochs
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import tempfile
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pandas as pd
import torch
from _demo import DEMO_TOML
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from analysis.stats import compare_methods
from study.config import StudyConfig, load_config
from study.runner import build_scheduler, build_searcher
from trainables.synth import write_synthetic_dataset
from trainables.trial import run_trial

METRIC = "r_mean"
METHODS = {  # name -> [sampler] overrides
    "random": ["sampler.kind='random'"],
    "tpe-10": ["sampler.kind='tpe'", "sampler.startup_trials=10"],
    "tpe": ["sampler.kind='tpe'", "sampler.startup_trials=0"],
    "gp": ["sampler.kind='gp'", "sampler.startup_trials=0"],
}
BASELINE = "random"
GRID = {  # within demo.toml's space of clip:adamw / sogclr:adamw (weight_decay narrowed)
    "lr": [3e-4, 1e-3, 3e-3, 1e-2],
    "temperature": [0.015, 0.04, 0.1],
    "weight_decay": [1e-2],
}
BUDGET_FRACTIONS = (0.10, 0.20, 0.35, 1.0)


@dataclass(frozen=True)
class Settings:
    cells: tuple[str, ...]
    n_train: int
    n_retrieval: int
    max_epochs: int
    grace_period: int
    trials_per_cell: int
    seeds: int


SMALL = Settings(("clip:adamw",), 1024, 128, 4, 1, 8, 5)
FULL = Settings(("clip:adamw", "sogclr:adamw"), 4096, 256, 6, 2, 12, 10)


class Stopped(Exception):
    """Raised from a trial's report callback when ASHA stops it."""


@dataclass
class Ledger:
    """Trial-epochs spent and, after each, the best full-budget value so far (per cell)."""

    epochs: int = 0
    curve: list[tuple[int, str, float]] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.curve = []

    def best_at(self, budget: float, cells: tuple[str, ...]) -> float:
        """Mean over cells of each cell's best full-budget value within ``budget`` epochs
        (NaN when a cell has none yet)."""
        best = {cell: -math.inf for cell in cells}
        for epochs, cell, value in self.curve:
            if epochs <= budget:
                best[cell] = max(best[cell], value)
        values = [v if v > -math.inf else math.nan for v in best.values()]
        return float(np.mean(values))


def study_config(data: Path, runs: Path, settings: Settings, overrides: list[str], name: str):
    cells = ", ".join(f'"{c}"' for c in settings.cells)
    return load_config(
        DEMO_TOML,
        [
            f'data.dir="{data}"',
            f'study.runs_dir="{runs}"',
            f'study.storage="journal:{runs / name}.journal"',
            f"study.trials_per_cell={settings.trials_per_cell}",
            f"scheduler.max_epochs={settings.max_epochs}",
            f"scheduler.grace_period={settings.grace_period}",
            f"search.cells=[{cells}]",
            *overrides,
        ],
        name=name,
    )


def train(cfg: StudyConfig, params: dict, on_epoch) -> None:
    """Run one trial of ``cfg`` with searched ``params``; ``on_epoch(metrics)`` may raise
    :class:`Stopped`."""
    with contextlib.suppress(Stopped):
        run_trial(cfg.trial.with_params(params), lambda metrics, _ckpt: on_epoch(metrics))


def sweep(cfg: StudyConfig) -> Ledger:
    """One sweep of ``cfg`` as described in the module docstring."""
    search, asha = build_searcher(cfg), build_scheduler(cfg)
    ledger, pending, ids = Ledger(), deque(), itertools.count()

    def suggest() -> None:
        trial_id = f"{next(ids):05d}"
        config = search.suggest(trial_id)
        if isinstance(config, dict):
            trial = SimpleNamespace(trial_id=trial_id, config=config)
            asha.on_trial_add(None, trial)
            pending.append((trial, config))

    for _ in range(cfg.resources.max_concurrent):
        suggest()
    while pending:
        trial, config = pending.popleft()
        last: dict = {}

        def on_epoch(metrics: dict, trial=trial) -> None:
            nonlocal last
            last = metrics
            ledger.epochs += 1
            if metrics["epoch"] >= cfg.scheduler.max_epochs:
                ledger.curve.append((ledger.epochs, trial.config["cell"], metrics[METRIC]))
            search.on_trial_result(trial.trial_id, metrics)
            if asha.on_trial_result(None, trial, metrics) == TrialScheduler.STOP:
                raise Stopped

        train(cfg, config, on_epoch)
        search.on_trial_complete(trial.trial_id, result=last)
        asha.on_trial_complete(None, trial, last)
        suggest()
    assert search.suggest("end") == Searcher.FINISHED
    return ledger


def grid(cfg: StudyConfig) -> Ledger:
    """Every grid point of every cell at the full budget, no early stopping."""
    ledger = Ledger()
    for cell in cfg.cells:
        loss, optimizer = cell.split(":")
        for values in itertools.product(*GRID.values()):
            params = {"loss": loss, "optimizer": optimizer, **dict(zip(GRID, values, strict=True))}
            if loss == "sogclr":
                params["gamma"] = 0.5

            def on_epoch(metrics: dict, cell=cell) -> None:
                ledger.epochs += 1
                if metrics["epoch"] >= cfg.scheduler.max_epochs:
                    ledger.curve.append((ledger.epochs, cell, metrics[METRIC]))

            train(cfg, params, on_epoch)
    return ledger


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1 cell, 1024 pairs, 4 epochs")
    parser.add_argument("--seeds", type=int, help="sweep seeds (default 5 small, 10 full)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    args = parser.parse_args()
    settings = SMALL if args.small else FULL
    seeds = range(args.seeds or settings.seeds)
    methods = args.methods.split(",")
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="Define-by-run function")  # GPSampler's ~1 s
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        write_synthetic_dataset(data, n_train=settings.n_train, n_retrieval=settings.n_retrieval)
        runs = Path(tmp) / "runs"
        runs.mkdir()
        reference = grid(study_config(data, runs, settings, [], "grid"))
        ledgers = {}
        for method, seed in itertools.product(methods, seeds):
            if method == "tpe-10" and "random" in methods and settings.trials_per_cell <= 10:
                ledgers[method, seed] = ledgers["random", seed]  # the same draws
                continue
            overrides = [*METHODS[method], f"study.seed={seed}"]
            cfg = study_config(data, runs, settings, overrides, f"{method}-{seed}")
            ledgers[method, seed] = sweep(cfg)
            print(f"{method} seed {seed}: {ledgers[method, seed].epochs} trial-epochs", flush=True)
    report(settings, reference, ledgers, methods, seeds, time.perf_counter() - start)


def report(settings, reference: Ledger, ledgers: dict, methods, seeds, seconds: float) -> None:
    cells = settings.cells
    grid_best = reference.best_at(math.inf, cells)
    budgets = [fraction * reference.epochs for fraction in BUDGET_FRACTIONS]
    header = [f"best@{f:.0%}" for f in BUDGET_FRACTIONS]
    rows = [
        {
            "method": method,
            **{
                h: np.mean([ledgers[method, s].best_at(b, cells) for s in seeds])
                for h, b in zip(header, budgets, strict=True)
            },
            "epochs": np.mean([ledgers[method, s].epochs for s in seeds]),
            "epochs/grid": np.mean([ledgers[method, s].epochs for s in seeds]) / reference.epochs,
        }
        for method in methods
    ]
    rows.append(
        {
            "method": "grid (no ASHA)",
            **{h: reference.best_at(b, cells) for h, b in zip(header, budgets, strict=True)},
            "epochs": reference.epochs,
            "epochs/grid": 1.0,
        }
    )
    print(
        f"cells {', '.join(cells)}; {settings.n_train} train pairs, {settings.max_epochs} "
        f"epochs, {settings.trials_per_cell} trials per cell, {len(seeds)} sweep seeds; "
        f"grid {reference.epochs} trial-epochs; {seconds:.0f} s"
    )
    print("mean over sweep seeds of the best full-budget r_mean within x% of the grid's epochs")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    at_35 = 0.35 * reference.epochs
    for method in methods:
        values = [ledgers[method, s].best_at(at_35, cells) for s in seeds]
        hits = sum(v >= grid_best - 1.0 for v in values)
        print(
            f"{method}: within 1 point of the grid's best {grid_best:.2f} at <= 35% of its "
            f"trial-epochs in {hits}/{len(seeds)} seeds (mean {np.mean(values):.2f})"
        )
    scores = pd.DataFrame(
        [
            {
                "method": method,
                "seed": s,
                "metric": METRIC,
                "value": ledgers[method, s].best_at(
                    min(ledgers[m, s].epochs for m in methods), cells
                ),
            }
            for method in methods
            for s in seeds
        ]
    )
    if BASELINE in methods and len(methods) > 1:
        comparison = compare_methods(scores, METRIC, baseline=BASELINE)
        columns = ["method_a", "method_b", "effect_size", "ci_low", "ci_high", "a12"]
        columns += ["test", "p_value", "p_adjusted", "significant", "bayes_decision"]
        print(f"paired by sweep seed at equal budget, vs {BASELINE} (effect = a - b, points):")
        print(comparison.test_choice.reason)
        print(comparison.pairwise[columns].to_string(index=False, float_format="{:.3f}".format))
        for note in comparison.notes:
            print(f"note: {note}")


if __name__ == "__main__":
    main()
