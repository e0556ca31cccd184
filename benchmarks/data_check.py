"""How long the driver's data check takes on a 3-million-row train annotation file.

Writes a built-in dataset (for its images, retrieval and zero-shot sets) and, next to it, a
train JSON and an open_clip CSV of ``--rows`` pairs (the dataset's images, cycled) in a
temporary directory, then times :func:`study.checks.check_data`'s work
(:func:`trainables.source_check.check_sources`: schema, row count, a few decoded images) on
each. Goal: seconds, not minutes. With ``--full`` it also times what the check did before,
reading every row into records (the vocabulary over every caption came on top of that).
Usage: python benchmarks/data_check.py [--rows 3000000] [--full]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from trainables.config import DataPaths
from trainables.data import read_train_annotations
from trainables.source_check import check_sources
from trainables.synth import write_synthetic_dataset


def write_annotations(root: Path, rows: int) -> None:
    """train-big.json and train-big.csv with ``rows`` pairs over the dataset's train images."""
    base = json.loads((root / "train.json").read_text())
    quoted = [(json.dumps(r["image"]), json.dumps(r["caption"])) for r in base]
    json_rows = (
        '{{"image": {}, "caption": {}, "image_id": "big_{}"}}'.format(*quoted[i % len(base)], i)
        for i in range(rows)
    )
    (root / "train-big.json").write_text("[\n" + ",\n".join(json_rows) + "\n]\n")
    csv_rows = (f"{r['image']}\t{r['caption']}\n" for r in base)
    lines = list(csv_rows)
    with (root / "train-big.csv").open("w") as handle:
        handle.write("filepath\ttitle\n")
        handle.writelines(lines[i % len(lines)] for i in range(rows))


def timed(label: str, fn) -> None:
    """Print the wall and CPU seconds of ``fn()`` (CPU time: the machine may be shared)."""
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"  {label:32s} {wall:6.2f} s wall  {cpu:6.2f} s CPU  {result}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--full", action="store_true", help="also time reading every row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_synthetic_dataset(root, n_train=256, n_retrieval=64, zeroshot_per_class=2)
        start = time.perf_counter()
        write_annotations(root, args.rows)
        size = (root / "train-big.json").stat().st_size / 1e6
        print(
            f"wrote {args.rows:,} rows ({size:.0f} MB JSON) in {time.perf_counter() - start:.1f} s"
        )
        as_json = DataPaths(str(root), train_json="train-big.json")
        as_csv = dataclasses.replace(as_json, train_format="csv", train_csv="train-big.csv")
        timed("check, JSON", lambda: check_sources(as_json, 32))
        timed("check, CSV", lambda: check_sources(as_csv, 32))
        if args.full:
            path = root / "train-big.json"
            timed("reading every JSON row (before)", lambda: len(read_train_annotations(path)))


if __name__ == "__main__":
    main()
