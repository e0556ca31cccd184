"""Search efficiency: the best full-budget r_mean each sampler finds per trial-epoch spent.

Trial noise decides the set-up. On the small settings (``--noise``) one config's final r_mean
varies over 3 trial seeds with a pooled SD of 6.0 points, against an SD of 10.2 across the
28 points of the lr x temperature grid (ratio 0.59); at ASHA's rungs it is worse: 1.12 against
1.16 after epoch 1 (0.96), 3.15 against 3.41 after epoch 2 (0.92). A sweep that trains each
trial once with the fixed trial seed and is scored by the value it saw ranks samplers mostly
by luck (before: paired CI [-7.8, 4.8] points over 5 sweep seeds). So this benchmark works in
two steps, as tabular HPO benchmarks (LCBench, Syne Tune's simulator) do:

1. **Table** (real trials, ``trainables.trial.run_trial`` on a freshly synthesised built-in
   dataset): every point of a log grid over lr x temperature (weight_decay fixed), for
   ``trial_seeds`` trial seeds (from ``--first-trial-seed``, 0 by default), each trained to
   the full budget; its r_mean after every epoch.
   ``--noise`` prints the noise figures above from it.
2. **Sweeps** replayed against the table, driven by the harness's own pieces: the study file's
   per-cell searcher (:func:`study.runner.build_searcher`: one ``TruthfulOptunaSearch`` per
   cell with the ``[sampler]`` of the method) and per-cell ASHA
   (:func:`study.runner.build_scheduler`). A suggested config takes the learning curve of the
   nearest grid point (in log lr, log temperature); sweep seed k sees the curves of the
   table's (k mod ``trial_seeds``)-th trial seed (as in the harness, one fixed trial seed per
   sweep). ``max_concurrent`` trials are in flight: a new trial is suggested whenever one
   finishes, while the other is still RUNNING in its Optuna study (what ``constant_liar``
   sees).

A sweep's result is its best full-budget trial by the value it saw, scored by that config's
**mean over all trial seeds** (what a confirmation run would find), so a sampler gains nothing
from a lucky seed. The reference is the grid itself run to the full budget without early
stopping, on the same trial seed, scored the same way.

Methods: ``random`` (random search), ``tpe-10`` (TPE with Optuna's default 10 start-up
trials: clipstudy before issue 13), ``tpe`` (TPE with the automatic start-up of
:mod:`study.samplers`) and ``gp`` (GPSampler), all under ASHA; on request ``random+warm`` and
``tpe+warm``, the same with ``[sampler] warm_start`` (needs two cells with shared knobs:
``--cells clip:adamw,sogclr:adamw``, or ``--twin``, which adds a cell replaying the first
cell's curves with the next trial seed without training a second table).

Printed: the mean over sweep seeds of the score reached after 10%, 20%, 35% and 100% of the
grid's trial-epochs; each method's trial-epochs; the goal check (within 1 point of the grid's
score at <= 35% of its trial-epochs); and ``analysis.compare_methods`` of the score at equal
budget (per seed, the smallest budget any method spent), paired by sweep seed, against
``random``.

    python benchmarks/search_efficiency.py --small      # 1 cell, 1024 pairs, 4 epochs
    python benchmarks/search_efficiency.py --small --table T.json --methods random,tpe
                                                        # reuse the table saved in T.json
    python benchmarks/search_efficiency.py --small --table H.json --first-trial-seed 3
                                                        # a held-out table (trial seeds 3-5)
    python benchmarks/search_efficiency.py --small --table T.json --twin sogclr:adamw
        --methods random,random+warm,tpe,tpe+warm       # (one line) warm starts on a twin cell
    python benchmarks/search_efficiency.py              # 2 demo cells, default data, 6 epochs
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
import time
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
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
from trainables.config import TrialConfig
from trainables.synth import write_synthetic_dataset
from trainables.trial import run_trial

METRIC = "r_mean"
METHODS = {  # name -> [sampler] overrides
    "random": ["sampler.kind='random'"],
    "tpe-10": ["sampler.kind='tpe'", "sampler.startup_trials=10"],
    "tpe": ["sampler.kind='tpe'", "sampler.startup_trials=0"],
    "gp": ["sampler.kind='gp'", "sampler.startup_trials=0"],
    "random+warm": ["sampler.kind='random'", "sampler.warm_start=true"],
    "tpe+warm": ["sampler.kind='tpe'", "sampler.startup_trials=0", "sampler.warm_start=true"],
}
DEFAULT_METHODS = ("random", "tpe-10", "tpe", "gp")
BASELINE = "random"
LRS = tuple(float(v) for v in np.geomspace(1e-4, 1e-2, 7))  # demo.toml's AdamW lr range
TEMPERATURES = tuple(float(v) for v in np.geomspace(0.01, 0.2, 4))  # its temperature range
WEIGHT_DECAY = 1e-2  # fixed: the table covers lr x temperature
SOGCLR_GAMMA = 0.5  # fixed for sogclr cells
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
    trial_seeds: int
    # the table trains trial seeds first_trial_seed, first_trial_seed + 1, ...
    first_trial_seed: int = 0


SMALL = Settings(("clip:adamw",), 1024, 128, 4, 2, 12, 30, 3)
FULL = Settings(("clip:adamw", "sogclr:adamw"), 4096, 256, 6, 2, 12, 30, 3)


def table_settings(settings: Settings) -> Settings:
    """What the table depends on: the settings less the sweeps' own."""
    return replace(settings, grace_period=0, trials_per_cell=0, seeds=0)


class Table:
    """Learning curves (r_mean after each epoch) of every grid point, cell and trial seed."""

    def __init__(self, curves: dict[tuple[str, int, int, int], tuple[float, ...]], seeds: int):
        self.curves = curves
        self.seeds = seeds

    @staticmethod
    def nearest(params: dict) -> tuple[int, int]:
        """Indices of the grid point nearest to ``params`` in (log lr, log temperature)."""
        i = int(np.argmin([abs(math.log(params["lr"] / lr)) for lr in LRS]))
        j = int(np.argmin([abs(math.log(params["temperature"] / t)) for t in TEMPERATURES]))
        return i, j

    def curve(self, cell: str, params: dict, seed: int) -> tuple[float, ...]:
        return self.curves[(cell, *self.nearest(params), seed % self.seeds)]

    def score(self, cell: str, params: dict) -> float:
        """The full-budget r_mean of ``params``' grid point, averaged over trial seeds."""
        i, j = self.nearest(params)
        return float(np.mean([self.curves[cell, i, j, s][-1] for s in range(self.seeds)]))

    def save(self, path: Path, settings: Settings) -> None:
        rows = [[*key, list(curve)] for key, curve in self.curves.items()]
        path.write_text(json.dumps({"settings": repr(table_settings(settings)), "curves": rows}))

    @classmethod
    def load(cls, path: Path, settings: Settings) -> Table | None:
        """The table saved at ``path`` (None when there is no file yet); SystemExit when it
        was saved for other settings (sweep seeds and ASHA aside), rather than overwrite it."""
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        if saved["settings"] != repr(table_settings(settings)):
            raise SystemExit(
                f"{path} holds a table for {saved['settings']}, not for "
                f"{table_settings(settings)}; pass another --table file"
            )
        curves = {(c, i, j, s): tuple(curve) for c, i, j, s, curve in saved["curves"]}
        return cls(curves, settings.trial_seeds)

    def with_twin(self, cell: str, twin: str) -> Table:
        """This table plus cell ``twin`` replaying ``cell``'s curves with the next trial seed:
        a neighbour with the same landscape and noise of its own (warm start's best case)."""
        curves = dict(self.curves)
        for c, i, j, seed in self.curves:
            if c == cell:
                curves[twin, i, j, seed] = self.curves[c, i, j, (seed + 1) % self.seeds]
        return Table(curves, self.seeds)

    def noise(self, cell: str, epoch: int) -> tuple[float, float]:
        """(pooled SD over trial seeds, SD across grid points of the seed means) at ``epoch``."""
        points = list(itertools.product(range(len(LRS)), range(len(TEMPERATURES))))
        values = np.array(
            [[self.curves[cell, i, j, s][epoch - 1] for s in range(self.seeds)] for i, j in points]
        )
        return float(np.sqrt(values.var(axis=1, ddof=1).mean())), float(values.mean(1).std(ddof=1))


@dataclass
class Ledger:
    """Trial-epochs spent and, after each full-budget trial, (epochs so far, cell, the value
    the sweep saw, the config's score)."""

    epochs: int = 0
    curve: list[tuple[int, str, float, float]] = field(default_factory=list)

    def best_at(self, budget: float, cells: tuple[str, ...]) -> float:
        """Mean over cells of the score of each cell's best-seen full-budget trial within
        ``budget`` epochs (NaN when a cell has none yet)."""
        picks = {}
        for epochs, cell, seen, score in self.curve:
            if epochs <= budget and (cell not in picks or seen > picks[cell][0]):
                picks[cell] = (seen, score)
        return float(np.mean([picks[c][1] if c in picks else math.nan for c in cells]))


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
            f"search.weight_decay={WEIGHT_DECAY}",
            *([f"search.gamma={SOGCLR_GAMMA}"] if "sogclr:" in cells else []),
            *overrides,
        ],
        name=name,
    )


def learning_curve(trial: TrialConfig) -> tuple[float, ...]:
    """r_mean after each epoch of one real trial (run in a worker process)."""
    torch.set_num_threads(1)
    values: list[float] = []
    run_trial(trial, lambda metrics, _ckpt: values.append(float(metrics[METRIC])))
    return tuple(values)


def build_table(cfg: StudyConfig, settings: Settings, workers: int) -> Table:
    """Train every (cell, lr, temperature, trial seed) of the grid to the full budget."""
    keys, trials = [], []
    for cell in settings.cells:
        loss, optimizer = cell.split(":")
        for (i, lr), (j, temperature) in itertools.product(enumerate(LRS), enumerate(TEMPERATURES)):
            params = {"loss": loss, "optimizer": optimizer, "lr": lr, "temperature": temperature}
            params["weight_decay"] = WEIGHT_DECAY
            if loss == "sogclr":
                params["gamma"] = SOGCLR_GAMMA
            for seed in range(settings.trial_seeds):
                keys.append((cell, i, j, seed))
                trial_seed = settings.first_trial_seed + seed
                trials.append(replace(cfg.trial, seed=trial_seed).with_params(params))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        curves = list(pool.map(learning_curve, trials))
    return Table(dict(zip(keys, curves, strict=True)), settings.trial_seeds)


def sweep(cfg: StudyConfig, table: Table, seed: int) -> Ledger:
    """One sweep of ``cfg`` replayed against ``table`` with trial seed ``seed`` (see the module
    docstring)."""
    search, asha = build_searcher(cfg), build_scheduler(cfg)
    ledger, pending, ids = Ledger(), deque(), itertools.count()

    def suggest() -> None:
        trial_id = f"{next(ids):05d}"
        config = search.suggest(trial_id)
        if isinstance(config, dict):
            trial = SimpleNamespace(trial_id=trial_id, config=config)
            asha.on_trial_add(None, trial)
            pending.append(trial)

    for _ in range(cfg.resources.max_concurrent):
        suggest()
    while pending:
        trial = pending.popleft()
        cell = trial.config["cell"]
        metrics: dict = {}
        for epoch, value in enumerate(table.curve(cell, trial.config, seed), start=1):
            metrics = {"epoch": epoch, METRIC: value}
            ledger.epochs += 1
            if epoch >= cfg.scheduler.max_epochs:
                ledger.curve.append((ledger.epochs, cell, value, table.score(cell, trial.config)))
            search.on_trial_result(trial.trial_id, metrics)
            if asha.on_trial_result(None, trial, metrics) == TrialScheduler.STOP:
                break
        search.on_trial_complete(trial.trial_id, result=metrics)
        asha.on_trial_complete(None, trial, metrics)
        suggest()
    assert search.suggest("end") == Searcher.FINISHED
    return ledger


def grid(table: Table, settings: Settings, seed: int) -> Ledger:
    """Every grid point of every cell at the full budget, no early stopping, trial seed
    ``seed``."""
    ledger = Ledger()
    for cell in settings.cells:
        for lr, temperature in itertools.product(LRS, TEMPERATURES):
            params = {"lr": lr, "temperature": temperature}
            ledger.epochs += settings.max_epochs
            seen = table.curve(cell, params, seed)[-1]
            ledger.curve.append((ledger.epochs, cell, seen, table.score(cell, params)))
    return ledger


def print_noise(table: Table, settings: Settings) -> None:
    for cell in settings.cells:
        for epoch in range(1, settings.max_epochs + 1):
            within, across = table.noise(cell, epoch)
            print(
                f"noise {cell} epoch {epoch}: SD over {settings.trial_seeds} trial seeds "
                f"{within:.2f} (pooled), SD across the {len(LRS) * len(TEMPERATURES)} grid "
                f"points {across:.2f}, ratio {within / across:.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1 cell, 1024 pairs, 4 epochs")
    parser.add_argument("--seeds", type=int, help="sweep seeds (default 30)")
    parser.add_argument("--grace-period", type=int, help="ASHA's first rung (default 2)")
    parser.add_argument(
        "--methods", default=",".join(DEFAULT_METHODS), help=f"comma-separated, of {list(METHODS)}"
    )
    parser.add_argument("--cells", help="comma-separated cells (e.g. clip:adamw,sogclr:adamw)")
    parser.add_argument("--workers", type=int, default=2, help="processes building the table")
    parser.add_argument("--noise", action="store_true", help="also print the table's noise")
    parser.add_argument("--table", type=Path, help="JSON file: reuse the table saved there")
    parser.add_argument(
        "--first-trial-seed",
        type=int,
        default=0,
        help="train the table with trial seeds from this one (3: a table held out from the "
        "default one, to check a method chosen on it)",
    )
    parser.add_argument(
        "--twin",
        help="add this cell (e.g. sogclr:adamw), replaying the first cell's curves "
        "with the next trial seed (for warm starts)",
    )
    args = parser.parse_args()
    settings = SMALL if args.small else FULL
    settings = replace(settings, seeds=args.seeds or settings.seeds)
    if args.cells:
        settings = replace(settings, cells=tuple(args.cells.split(",")))
    settings = replace(settings, grace_period=args.grace_period or settings.grace_period)
    settings = replace(settings, first_trial_seed=args.first_trial_seed)
    seeds = range(settings.seeds)
    methods = args.methods.split(",")
    warnings.filterwarnings("ignore", message="Define-by-run function")  # GPSampler's ~1 s
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        write_synthetic_dataset(data, n_train=settings.n_train, n_retrieval=settings.n_retrieval)
        runs = Path(tmp) / "runs"
        runs.mkdir()
        table = Table.load(args.table, settings) if args.table else None
        if table is None:
            table = build_table(
                study_config(data, runs, settings, [], "grid"), settings, args.workers
            )
            if args.table:
                table.save(args.table, settings)
        table_seconds = time.perf_counter() - start
        print(f"table: {len(table.curves)} trials in {table_seconds:.0f} s", flush=True)
        if args.noise:
            print_noise(table, settings)
        if args.twin:
            table = table.with_twin(settings.cells[0], args.twin)
            settings = replace(settings, cells=(*settings.cells, args.twin))
        ledgers = {}
        for method, seed in itertools.product(methods, seeds):
            overrides = [*METHODS[method], f"study.seed={seed}"]
            cfg = study_config(data, runs, settings, overrides, f"{method}-{seed}")
            ledgers[method, seed] = sweep(cfg, table, seed)
    references = {seed: grid(table, settings, seed) for seed in seeds}
    report(settings, references, ledgers, methods, seeds, time.perf_counter() - start)


def report(settings, references: dict, ledgers: dict, methods, seeds, seconds: float) -> None:
    cells = settings.cells
    grid_epochs = references[0].epochs
    budgets = [fraction * grid_epochs for fraction in BUDGET_FRACTIONS]
    header = [f"best@{f:.0%}" for f in BUDGET_FRACTIONS]

    def row(name: str, ledger_of) -> dict:
        epochs = np.mean([ledger_of(s).epochs for s in seeds])
        return {
            "method": name,
            **{
                h: np.mean([ledger_of(s).best_at(b, cells) for s in seeds])
                for h, b in zip(header, budgets, strict=True)
            },
            "epochs": epochs,
            "epochs/grid": epochs / grid_epochs,
        }

    rows = [row(m, lambda s, m=m: ledgers[m, s]) for m in methods]
    rows.append(row("grid (no ASHA)", references.__getitem__))
    print(
        f"cells {', '.join(cells)}; {settings.n_train} train pairs, {settings.max_epochs} "
        f"epochs, ASHA grace {settings.grace_period}, {settings.trials_per_cell} trials per "
        f"cell, {len(seeds)} sweep seeds, trial seeds {settings.first_trial_seed}–"
        f"{settings.first_trial_seed + settings.trial_seeds - 1}; grid "
        f"{len(LRS)} lr x {len(TEMPERATURES)} temperatures, {grid_epochs} trial-epochs; "
        f"{seconds:.0f} s"
    )
    print(
        "mean over sweep seeds of the score (mean over trial seeds of the final r_mean) of "
        "the best-seen full-budget trial within x% of the grid's epochs"
    )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    at_35 = 0.35 * grid_epochs
    for method in methods:
        gaps = [
            references[s].best_at(math.inf, cells) - ledgers[method, s].best_at(at_35, cells)
            for s in seeds
        ]
        hits = sum(gap <= 1.0 for gap in gaps)
        print(
            f"{method}: within 1 point of the grid's score at <= 35% of its trial-epochs in "
            f"{hits}/{len(seeds)} seeds (mean gap {np.nanmean(gaps):.2f})"
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
