"""Is the built-in dataset learnable, and do the loss and the learning rate matter?

Synthesises the built-in dataset (default arguments of ``write_synthetic_dataset``) into a
temporary directory, then trains a few named configurations with ``trainables.trial.run_trial``
(no Ray) on one thread, with the model and trial values of configs/demo.toml and
``[scheduler] max_epochs`` epochs, and prints r_mean / zs_top1 after every epoch and the time
per epoch. An untrained model is evaluated first as the chance level.

    .venv/bin/python benchmarks/learnability.py                    # every configuration
    .venv/bin/python benchmarks/learnability.py --only good_clip,lr_too_low --epochs 8
    .venv/bin/python benchmarks/learnability.py --data data/synth  # reuse a written dataset

``--set model.KEY=VALUE`` / ``trial.KEY=VALUE`` / ``synth.KEY=VALUE`` try other sizes.

Results (1 thread of a 2-core AMD EPYC VM, default dataset of seed 0, configs/demo.toml:
image_width 8, text_width 32, text_heads 4, batch 64, 8 epochs; r_mean / zs_top1 in percent;
chance = the untrained model: r_mean 2.0, zs_top1 3.6 over 28 classes; cpu_s includes
reading the data and building the model)::

    config         ep1        ep2        ep4        ep6        ep8     cpu_s
    good_clip    18.8/7.1   43.8/9.8   71.9/22.3  84.0/24.6  85.2/27.7   24.6
    good_sogclr  19.4/7.6   48.7/6.2   73.3/12.1  78.5/23.2  82.4/21.9   24.7
    sgd_nesterov  3.9/4.5    5.9/6.2    3.6/5.8   14.3/3.6   17.9/5.4    23.8
    lr_1e-4       4.1/8.5    4.9/7.1   10.2/5.4   17.0/5.8   17.3/6.2    24.3
    lr_too_low    2.1/4.0    2.5/3.6    3.0/6.7    3.2/8.0    3.2/7.6    24.4
    lr_too_high   3.2/2.7    2.0/0.9    2.0/1.8    2.1/3.1    2.1/3.1    25.0
    tau_too_high 12.9/6.2   15.8/8.0   13.9/4.5   18.2/8.0   18.1/6.7    24.7

An epoch costs ~3 s of one thread (0.3 s of it evaluation). Colour alone caps zs_top1 at 14.3
(the right colour, one of 7 shapes guessed), so the good configurations' 22-28 need the shapes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainables.config import DataPaths, TrialConfig  # noqa: E402
from trainables.evaluation import evaluate  # noqa: E402
from trainables.model import ModelConfig  # noqa: E402
from trainables.synth import write_synthetic_dataset  # noqa: E402
from trainables.trial import build_state, run_trial  # noqa: E402
from trainables.trial_data import load_trial_data  # noqa: E402

# name -> searched parameters, as the demo space suggests them (search_spaces/demo.py): the
# good ones are near the best the demo sweep finds; the others are one step off a good one.
CONFIGS: dict[str, dict[str, object]] = {
    "good_clip": {"loss": "clip", "optimizer": "adamw", "lr": 3e-3, "temperature": 0.05},
    "good_sogclr": {
        "loss": "sogclr",
        "optimizer": "adamw",
        "lr": 3e-3,
        "temperature": 0.05,
        "gamma": 0.8,
    },
    "sgd_nesterov": {"loss": "clip", "optimizer": "sgd_nesterov", "lr": 0.01, "temperature": 0.05},
    "lr_1e-4": {"loss": "clip", "optimizer": "adamw", "lr": 1e-4, "temperature": 0.05},
    "lr_too_low": {"loss": "clip", "optimizer": "adamw", "lr": 1e-5, "temperature": 0.05},
    "lr_too_high": {"loss": "clip", "optimizer": "adamw", "lr": 0.1, "temperature": 0.05},
    "tau_too_high": {"loss": "clip", "optimizer": "adamw", "lr": 3e-3, "temperature": 1.0},
}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "demo.toml")
    parser.add_argument("--epochs", type=int, help="default: [scheduler] max_epochs")
    parser.add_argument("--only", help="comma-separated configuration names")
    parser.add_argument("--data", type=Path, help="an existing dataset dir (default: synthesise)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TABLE.KEY=VALUE",
        help="override a value: model.*, trial.* or synth.* (a write_synthetic_dataset argument)",
    )
    return parser.parse_args()


def _chance(base: TrialConfig) -> dict[str, float]:
    """Metrics of the untrained model (initialisation of the trial seed)."""
    data = load_trial_data(base)
    state = build_state(base, data)
    with torch.no_grad():
        return evaluate(state.model, data, base.eval_batch_size)


def _run(cfg: TrialConfig) -> list[dict[str, float]]:
    """Per-epoch metrics plus ``wall_s`` and ``cpu_s`` (this process's CPU time) per epoch,
    counted from the call, so that epoch 1 includes reading the data and building the model."""
    rows: list[dict[str, float]] = []
    last = time.perf_counter(), time.process_time()

    def report(metrics: dict[str, float], checkpoint_dir: Path) -> None:
        nonlocal last
        now = time.perf_counter(), time.process_time()
        rows.append({**metrics, "wall_s": now[0] - last[0], "cpu_s": now[1] - last[1]})
        last = now
        print(
            f"  epoch {int(metrics['epoch'])}: r_mean {metrics['r_mean']:5.1f}  "
            f"zs_top1 {metrics['zs_top1']:5.1f}  loss {metrics['train_loss']:.3f}  "
            f"({rows[-1]['wall_s']:.1f} s wall, {rows[-1]['cpu_s']:.1f} s CPU, "
            f"eval {metrics['time_eval_s']:.1f} s)",
            flush=True,
        )

    run_trial(cfg, report)
    return rows


def main() -> None:
    args = _parse()
    torch.set_num_threads(args.threads)
    study = tomllib.loads(args.config.read_text(encoding="utf-8"))
    model_table = dict(study.get("model", {}))
    trial_table = dict(study.get("trial", {}))
    epochs = args.epochs or int(study["scheduler"]["max_epochs"])
    tables: dict[str, dict] = {"model": model_table, "trial": trial_table, "synth": {}}
    for item in args.set:
        key, _, value = item.partition("=")
        table, _, field = key.partition(".")
        if table not in tables or not field or not value:
            raise SystemExit(f"--set {item!r}: expected model.KEY=VALUE, trial.* or synth.*")
        tables[table][field] = tomllib.loads(f"v = {value}")["v"]
    names = args.only.split(",") if args.only else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration {unknown[0]!r}; known: {', '.join(CONFIGS)}")

    with tempfile.TemporaryDirectory(prefix="clipstudy-learnability-") as tmp:
        data_dir = args.data
        if data_dir is None:
            data_dir = Path(tmp) / "synth"
            start = time.perf_counter()
            summary = write_synthetic_dataset(data_dir, seed=args.seed, **tables["synth"])
            print(f"synthesised {summary} in {time.perf_counter() - start:.1f} s")
        base = TrialConfig(
            data=DataPaths(str(data_dir)),
            model=ModelConfig(**model_table),
            epochs=epochs,
            **trial_table,
        )
        print(
            f"model {model_table}, trial {trial_table}, {epochs} epochs, {args.threads} thread(s)"
        )
        chance = _chance(base)
        print(f"chance (untrained): r_mean {chance['r_mean']:.1f}  zs_top1 {chance['zs_top1']:.1f}")
        results: dict[str, list[dict[str, float]]] = {}
        for name in names:
            print(f"{name}: {CONFIGS[name]}", flush=True)
            results[name] = _run(base.with_params(CONFIGS[name]))

    width = max(len(n) for n in [*names, "chance"])
    header = " ".join(f"{'ep' + str(e + 1):>11}" for e in range(epochs))
    print(f"\nr_mean / zs_top1 per epoch ({epochs} epochs, {args.threads} thread(s))")
    print(f"{'config':<{width}} {header} {'s/epoch':>8} {'wall_s':>7} {'cpu_s':>6}")
    print(f"{'chance':<{width}} {chance['r_mean']:5.1f}/{chance['zs_top1']:<5.1f}")
    for name, rows in results.items():
        cells = " ".join(f"{r['r_mean']:5.1f}/{r['zs_top1']:<5.1f}" for r in rows)
        wall = sum(r["wall_s"] for r in rows)
        cpu = sum(r["cpu_s"] for r in rows)
        print(f"{name:<{width}} {cells} {wall / len(rows):8.1f} {wall:7.1f} {cpu:6.1f}")


if __name__ == "__main__":
    main()
