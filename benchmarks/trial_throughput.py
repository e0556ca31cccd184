"""Throughput of the demo trial and where its time goes.

Runs one demo trial (no Ray, one thread, the demo study's model and trial settings) on a fresh
built-in dataset and prints training pairs per second and the share of the trial's wall time
spent in set-up (reading data, building the model), data loading, forward/backward/step and
evaluation; for a loss with augmented views (amclr, xamclr), the share of the step spent
making them. Usage: python benchmarks/trial_throughput.py [--loss amclr] [--epochs N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _demo import demo_trial_config, synthesise

from trainables.data import read_train_annotations
from trainables.trial import run_trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="sogclr")
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = synthesise(Path(tmp) / "synth")
        params = {"loss": args.loss, "optimizer": args.optimizer, "lr": args.lr}
        cfg = demo_trial_config(data, params, epochs=args.epochs)
        n_train = len(read_train_annotations(data / "train.json"))
        epochs: list[dict] = []
        start = time.perf_counter()
        run_trial(cfg, lambda metrics, _: epochs.append(metrics))
        wall = time.perf_counter() - start
    pairs = len(epochs) * (n_train // cfg.batch_size) * cfg.batch_size
    data_s = sum(m["time_data_s"] for m in epochs)
    step_s = sum(m["time_step_s"] for m in epochs)
    eval_s = sum(m["time_eval_s"] for m in epochs)
    views_s = sum(m["time_views_s"] for m in epochs)
    other_s = wall - data_s - step_s - eval_s
    print(f"demo trial: {args.loss} + {args.optimizer}, {len(epochs)} epochs, 1 thread")
    print(f"  wall time            {wall:8.2f} s")
    print(f"  training throughput  {pairs / (data_s + step_s):8.1f} pairs/s (data + step time)")
    for name, seconds in [
        ("forward/backward/step", step_s),
        ("data loading", data_s),
        ("evaluation", eval_s),
        ("set-up, checkpoints", other_s),
    ]:
        print(f"  {name:22s} {seconds:8.2f} s  {100 * seconds / wall:5.1f}%")
    if views_s:
        share = 100 * views_s / step_s
        print(f"  making the views      {views_s:8.2f} s  {share:5.1f}% of step time (goal < 10%)")
    print(f"  final r_mean {epochs[-1]['r_mean']:.2f}, zs_top1 {epochs[-1]['zs_top1']:.2f}")


if __name__ == "__main__":
    main()
