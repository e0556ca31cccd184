"""Throughput of the demo trial and where its time goes.

Runs one demo trial (no Ray, one thread, the demo study's model and trial settings) on a fresh
built-in dataset and prints training pairs per second and the share of the trial's wall time
spent in set-up (reading data, building the model), data loading, forward/backward/step and
evaluation; for a loss with augmented views (amclr, xamclr), the share of the step spent
making them. The image cache is built before the trial, as the sweep driver does, and timed
apart. In the same run it times one epoch of the loading path without the cache (every PNG
decoded, resized and normalised in the trial process, item by item, as before the cache) and
prints the data-loading share of the step both ways (goal: < 5% with the cache).
Usage: python benchmarks/trial_throughput.py [--loss amclr] [--epochs N] [--format webdataset]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from _demo import demo_trial_config
from torch.utils.data import DataLoader, Dataset

from trainables.config import TrialConfig
from trainables.data import load_image, pre_caption, read_train_annotations
from trainables.image_cache import prepare_image_cache
from trainables.synth import write_synthetic_dataset
from trainables.trial import EpochOrder, run_trial


class DecodingPairs(Dataset):
    """Train pairs decoded from the PNG files on every access (the path before the cache)."""

    def __init__(self, cfg: TrialConfig) -> None:
        self.records = read_train_annotations(cfg.data.path("train_json"))
        self.root, self.size = cfg.data.path("train_images"), cfg.image_size

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        record = self.records[i]
        return load_image(self.root / record.image, self.size), pre_caption(record.caption)


def direct_epoch_seconds(cfg: TrialConfig) -> float:
    """Seconds to load one epoch's batches by decoding every image file (of train.json; every
    format holds the same images)."""
    pairs = DecodingPairs(cfg)
    order = EpochOrder(len(pairs), cfg.seed)
    loader = DataLoader(pairs, batch_size=cfg.batch_size, sampler=order, drop_last=True)
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", default="sogclr")
    parser.add_argument("--optimizer", default="adamw")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--format", default="json", choices=["json", "csv", "webdataset"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        summary = write_synthetic_dataset(Path(tmp) / "synth", formats=(args.format,))
        data = Path(tmp) / "synth"
        params = {"loss": args.loss, "optimizer": args.optimizer, "lr": args.lr}
        cfg = demo_trial_config(data, params, epochs=args.epochs)
        shards = str(summary.get("train_shards", ""))
        paths = dataclasses.replace(cfg.data, train_format=args.format, train_shards=shards)
        cfg = dataclasses.replace(cfg, data=paths)
        start = time.perf_counter()
        prepare_image_cache(cfg.data, cfg.image_size)
        cache_s = time.perf_counter() - start
        epochs: list[dict] = []
        start = time.perf_counter()
        run_trial(cfg, lambda metrics, _: epochs.append(metrics))
        wall = time.perf_counter() - start
        direct_s = direct_epoch_seconds(cfg) * len(epochs)
    n_train = int(summary["train_images"])
    pairs = len(epochs) * (n_train // cfg.batch_size) * cfg.batch_size
    data_s = sum(m["time_data_s"] for m in epochs)
    step_s = sum(m["time_step_s"] for m in epochs)
    eval_s = sum(m["time_eval_s"] for m in epochs)
    views_s = sum(m["time_views_s"] for m in epochs)
    other_s = wall - data_s - step_s - eval_s
    print(
        f"demo trial: {args.loss} + {args.optimizer}, {len(epochs)} epochs, 1 thread, {args.format}"
    )
    print(f"  image cache          {cache_s:8.2f} s  (once per sweep, before the trials)")
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
    for name, seconds in [("from the cache", data_s), ("decoding the files", direct_s)]:
        share = 100 * seconds / (seconds + step_s)
        print(f"  data loading {name:18s} {seconds:6.2f} s = {share:5.1f}% of data + step time")
    print(f"  final r_mean {epochs[-1]['r_mean']:.2f}, zs_top1 {epochs[-1]['zs_top1']:.2f}")


if __name__ == "__main__":
    main()
