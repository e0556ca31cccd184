"""The train pairs of every ``data.train_format``, as (record, image) samples in dataset order.

- ``json``: a CC3M-style JSON (:func:`trainables.data.read_train_annotations`); images are files
  under ``train_images``.
- ``csv``: a table as open_clip reads it: a header row, columns ``csv_img_key`` (image path,
  relative to ``train_images`` unless absolute) and ``csv_caption_key``, separated by
  ``csv_separator`` (open_clip's defaults: ``filepath``, ``title``, tab). The image path is
  the image_id, so every row is its own image.
- ``webdataset``: tar shards as img2dataset writes them: per sample ``{key}.jpg`` (or .jpeg,
  .png, .webp), ``{key}.txt`` (the caption) and an optional ``{key}.json`` (img2dataset's
  metadata; its ``image_id`` and ``paraphrases`` are used when present, else the image_id is
  the key). ``train_shards`` is a brace pattern, ``"shards/{00000..00009}.tar"``, read with the
  ``webdataset`` library in shard order.

A sample's image is a path (files), the encoded bytes (shards) or None (a shard sample
without an image, counted as unreadable like a missing file).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import braceexpand
import webdataset as wds

from trainables.config import DataPaths
from trainables.data import (
    DataError,
    TrainRecord,
    read_train_annotations,
    sample_train_annotations,
)

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")
ImageSource = Path | bytes | None
ImageSample = tuple[TrainRecord, ImageSource]


@dataclass(frozen=True)
class TrainSource:
    """``files``: what the data depends on (annotation file and image files, or the shards),
    fingerprinted by the image cache; ``samples()``: the (record, image) pairs in order."""

    files: list[Path]
    samples: Callable[[], Iterator[ImageSample]]


def _csv_rows(path: Path, img_key: str, caption_key: str, separator: str) -> Iterator[list[str]]:
    """The (image path, caption) of every row of an open_clip-style CSV, checked one by one."""
    what = "train CSV"
    if not path.is_file():
        raise DataError(f"{what} {path}: file not found (check data.dir and data.train_csv)")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=separator)
        columns = next(reader, [])
        for key, field in ((img_key, "csv_img_key"), (caption_key, "csv_caption_key")):
            if key not in columns:
                raise DataError(
                    f"{what} {path}: no column {key!r} (columns: {', '.join(columns) or 'none'}; "
                    f"set data.{field} or data.csv_separator {separator!r})"
                )
        image, caption = columns.index(img_key), columns.index(caption_key)
        width = max(image, caption) + 1
        for i, row in enumerate(reader):
            if len(row) < width:
                raise DataError(f"{what} {path}: row {i + 1} has fewer columns than the header")
            yield [row[image], row[caption]]


def read_train_csv(path: Path, img_key: str, caption_key: str, separator: str) -> list[TrainRecord]:
    """Rows of an open_clip-style CSV (module docstring), in file order."""
    rows = _csv_rows(path, img_key, caption_key, separator)
    records = [TrainRecord(image, caption, image) for image, caption in rows]
    if not records:
        raise DataError(f"train CSV {path}: no rows after the header (add train pairs)")
    return records


def shard_paths(paths: DataPaths) -> list[Path]:
    """The shard files of ``train_shards`` after brace expansion; DataError when one is missing."""
    pattern = paths.train_shards
    shards = [Path(paths.dir, p).resolve() for p in braceexpand.braceexpand(pattern)]
    missing = [p for p in shards if not p.is_file()]
    if missing:
        raise DataError(
            f"train shards {pattern!r}: {len(missing)} of {len(shards)} shards are missing, "
            f"first {missing[0]} (check data.dir and data.train_shards)"
        )
    return shards


def _shard_samples(shards: list[Path]) -> Iterator[ImageSample]:
    dataset = wds.WebDataset([str(p) for p in shards], shardshuffle=False, empty_check=False)
    try:
        for sample in dataset:
            key, url = sample["__key__"], Path(sample["__url__"]).name
            if "txt" not in sample:
                raise DataError(f"train shard {url}: sample {key!r} has no .txt caption")
            meta = json.loads(sample["json"]) if "json" in sample else {}
            image = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
            record = TrainRecord(
                f"{url}/{key}",
                sample["txt"].decode("utf-8"),
                str(meta.get("image_id", key)),
                tuple(meta.get("paraphrases", ())),
            )
            yield record, image
    except DataError:
        raise
    except (OSError, ValueError) as err:
        problem = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"train shards {shards[0].parent}: unreadable: {problem}") from err


def sample_train_source(paths: DataPaths, count: int) -> tuple[int | None, list[ImageSample]]:
    """(number of train pairs, or None when shards carry no img2dataset ``*_stats.json``; the
    first ``count`` samples): the driver's check, which reads neither every row into records
    nor a shard beyond its first samples. JSON rows are sampled from first to last."""
    if paths.train_format == "webdataset":
        shards = shard_paths(paths)
        stats = [p.with_name(p.name.removesuffix(".tar") + "_stats.json") for p in shards]
        total = None
        if all(p.is_file() for p in stats):
            total = sum(json.loads(p.read_text())["successes"] for p in stats)
        return total, list(islice(_shard_samples(shards), count))
    root = paths.path("train_images")
    if paths.train_format == "csv":
        csv_args = (paths.csv_img_key, paths.csv_caption_key, paths.csv_separator)
        rows = _csv_rows(paths.path("train_csv"), *csv_args)
        records = [TrainRecord(image, caption, image) for image, caption in islice(rows, count)]
        total = len(records) + sum(1 for _ in rows)
        if not total:
            raise DataError(f"train CSV {paths.path('train_csv')}: no rows after the header")
    else:
        total, records = sample_train_annotations(paths.path("train_json"), count)
    return total, [(r, root / r.image) for r in records]


def train_source(paths: DataPaths) -> TrainSource:
    """The train pairs of ``paths`` in their ``train_format``; DataError on bad input."""
    if paths.train_format == "webdataset":
        shards = shard_paths(paths)
        return TrainSource(shards, lambda: _shard_samples(shards))
    if paths.train_format == "csv":
        annotations = paths.path("train_csv")
        records = read_train_csv(
            annotations, paths.csv_img_key, paths.csv_caption_key, paths.csv_separator
        )
    else:
        annotations = paths.path("train_json")
        records = read_train_annotations(annotations)
    root = paths.path("train_images")
    images = [root / r.image for r in records]
    return TrainSource([annotations, *images], lambda: zip(records, images, strict=True))
