"""Decode once per sweep: the images of a dataset as uint8 arrays, shared by every trial.

The cache of a dataset at image size S lives in ``<data.cache_dir>/<fingerprint>/``; the
fingerprint is a SHA-256 of the cache layout version, S, the train format and its CSV keys,
and the path, size and mtime of every file the data is read from (annotation files, image
files or shards). Changing any of them gives a new directory; an old one is simply left
behind (:func:`clear_image_cache`, ``clipstudy data cache DIR --clear``, removes them). A
directory holds::

    train.u8 retrieval.u8 zeroshot.u8  raw uint8 pixels (n, 3, S, S), decode_image's output
    meta.json  shapes; train records and readable flags; retrieval records; zero-shot labels,
               classes and templates; the word-level vocabulary of every caption and prompt

The driver builds it (:func:`prepare_image_cache`) before any trial starts; trials open it
memory-mapped (:func:`load_image_cache`; :mod:`trainables.trial_data` builds it first when it
is missing, e.g. for a trial run on its own). A directory appears atomically (written under
a temporary name, then renamed), so concurrent builders do not see half-written caches.

Unreadable images: a train image that is missing or fails to decode is stored as zeros with
readable = False (the trial skips and counts it); an unreadable evaluation image raises
:class:`trainables.data.DataError`, as evaluation data must be intact.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from trainables.config import DataPaths
from trainables.data import (
    UNREADABLE,
    DataError,
    RetrievalRecord,
    TrainRecord,
    ZeroShotSpec,
    decode_image,
    list_image_folder,
    pre_caption,
    read_retrieval_annotations,
    read_zeroshot_classes,
    unreadable_problem,
)
from trainables.train_sources import ImageSource, TrainSource, train_source

CACHE_VERSION = 1
# a cache directory (the fingerprint) or one being written (mkdtemp's ".<16 hex>-<random>")
_CACHE_ENTRY = re.compile(r"[0-9a-f]{64}|\.[0-9a-f]{16}-[^/]+")
_CHUNK = 256  # images decoded per thread-pool round


@dataclass(frozen=True)
class ImageCache:
    """A dataset's decoded images (memory-mapped uint8 (n, 3, S, S)) and its text tables."""

    directory: Path
    train_records: list[TrainRecord]
    train_pixels: np.ndarray
    train_readable: np.ndarray  # (N,) bool
    retrieval_records: list[RetrievalRecord]
    retrieval_pixels: np.ndarray
    zeroshot_pixels: np.ndarray
    zeroshot_labels: list[int]
    zeroshot: ZeroShotSpec
    vocabulary: list[str]  # sorted words of every cleaned caption, paraphrase and prompt


@dataclass(frozen=True)
class _Sources:
    train: TrainSource
    retrieval: list[RetrievalRecord]
    retrieval_images: list[Path]
    zeroshot: ZeroShotSpec
    zeroshot_files: list[tuple[str, int]]


def _read_sources(paths: DataPaths) -> _Sources:
    """Every annotation file of ``paths``, checked; DataError on bad input."""
    train = train_source(paths)
    retrieval = read_retrieval_annotations(paths.path("retrieval_json"))
    zeroshot = read_zeroshot_classes(paths.path("zeroshot_classes"))
    zeroshot_files = list_image_folder(paths.path("zeroshot_dir"))
    check_class_folders(paths, zeroshot, zeroshot_files)
    root = paths.path("retrieval_images")
    return _Sources(train, retrieval, [root / r.image for r in retrieval], zeroshot, zeroshot_files)


def check_class_folders(
    paths: DataPaths, zeroshot: ZeroShotSpec, files: list[tuple[str, int]]
) -> None:
    """DataError unless the zero-shot tree has one class folder per class name."""
    n_folders = len({label for _, label in files})
    if n_folders != len(zeroshot.classes):
        raise DataError(
            f"zero-shot tree {paths.path('zeroshot_dir')} has {n_folders} class folders but "
            f"{paths.path('zeroshot_classes')} names {len(zeroshot.classes)} classes; "
            "they must match one to one, in sorted folder order"
        )


def fingerprint(paths: DataPaths, image_size: int, sources: _Sources) -> str:
    """SHA-256 (hex) of what the cached arrays depend on (module docstring)."""
    digest = hashlib.sha256()
    layout = {
        "version": CACHE_VERSION,
        "image_size": image_size,
        "train_format": paths.train_format,
        "csv": [paths.csv_img_key, paths.csv_caption_key, paths.csv_separator],
    }
    digest.update(json.dumps(layout, sort_keys=True).encode())
    files = [
        *sources.train.files,
        paths.path("retrieval_json"),
        *sources.retrieval_images,
        paths.path("zeroshot_classes"),
        *(Path(p) for p, _ in sources.zeroshot_files),
    ]
    for path in files:
        try:
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()


def decode_source(source: ImageSource, image_size: int) -> np.ndarray | str:
    """decode_image's pixels, or the problem (a one-line string) when there is no image."""
    if source is None:
        return "the sample has no image"
    try:
        return decode_image(io.BytesIO(source) if isinstance(source, bytes) else source, image_size)
    except UNREADABLE as err:
        return unreadable_problem(err)


def _write_pixels(
    samples: Iterable[tuple[Any, ImageSource]], out: Path, image_size: int, pool: ThreadPoolExecutor
) -> Iterator[tuple[Any, str | None]]:
    """Decode the samples' images in order into ``out`` (raw uint8 (n, 3, S, S), zeros for an
    unreadable one); yields (item, None or the problem) per sample."""
    blank = np.zeros((3, image_size, image_size), dtype=np.uint8)
    samples = iter(samples)
    with out.open("wb") as handle:
        while chunk := list(islice(samples, _CHUNK)):
            decoded = pool.map(lambda s: decode_source(s[1], image_size), chunk)
            for (item, _), pixels in zip(chunk, decoded, strict=True):
                if isinstance(pixels, str):
                    handle.write(blank.tobytes())
                    yield item, pixels
                else:
                    handle.write(pixels.tobytes())
                    yield item, None


def _eval_pixels(paths: list[Path], out: Path, image_size: int, pool: ThreadPoolExecutor) -> int:
    """Decode evaluation images into ``out``; DataError at the first unreadable one."""
    for path, problem in _write_pixels(((p, p) for p in paths), out, image_size, pool):
        if problem:
            raise unreadable_evaluation_image(path, problem)
    return len(paths)


def unreadable_evaluation_image(path: Path, problem: str) -> DataError:
    return DataError(
        f"evaluation image {path}: unreadable: {problem} "
        "(replace or remove the file and its annotation)"
    )


def _vocabulary(texts: Iterable[str]) -> list[str]:
    return sorted({word for text in texts for word in pre_caption(text).split()})


def _build(sources: _Sources, image_size: int, directory: Path) -> None:
    """Write the cache of ``sources`` into the new directory ``directory``."""
    records: list[TrainRecord] = []
    readable: list[bool] = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        train = _write_pixels(sources.train.samples(), directory / "train.u8", image_size, pool)
        for record, problem in train:
            records.append(record)
            readable.append(problem is None)
        if not records:
            raise DataError("the train data holds no samples (check data.train_shards)")
        n_retrieval = _eval_pixels(
            sources.retrieval_images, directory / "retrieval.u8", image_size, pool
        )
        zeroshot_paths = [Path(p) for p, _ in sources.zeroshot_files]
        n_zeroshot = _eval_pixels(zeroshot_paths, directory / "zeroshot.u8", image_size, pool)
    spec = sources.zeroshot
    texts = [
        *(t for r in records for t in (r.caption, *r.paraphrases)),
        *(c for r in sources.retrieval for c in r.captions),
        *(t.format(c) for c in spec.classes for t in spec.templates),
    ]
    meta = {
        "version": CACHE_VERSION,
        "image_size": image_size,
        "counts": {"train": len(records), "retrieval": n_retrieval, "zeroshot": n_zeroshot},
        "train": [[r.image, r.caption, r.image_id, list(r.paraphrases)] for r in records],
        "train_readable": readable,
        "retrieval": [[r.image, list(r.captions)] for r in sources.retrieval],
        "zeroshot_labels": [label for _, label in sources.zeroshot_files],
        "zeroshot": {"classes": list(spec.classes), "templates": list(spec.templates)},
        "vocabulary": _vocabulary(texts),
    }
    (directory / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def prepare_image_cache(paths: DataPaths, image_size: int) -> tuple[Path, bool]:
    """Build the cache of ``paths`` at ``image_size`` unless it exists; returns (its directory,
    whether it was built now). DataError on bad input (nothing is left behind)."""
    sources = _read_sources(paths)
    root = paths.path("cache_dir")
    directory = root / fingerprint(paths, image_size, sources)
    if cache_is_complete(directory):
        return directory, False
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{directory.name[:16]}-", dir=root))
    try:
        _build(sources, image_size, partial)
        os.rename(partial, directory)
    except OSError:
        if not cache_is_complete(directory):  # not another builder winning the race
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return directory, True


def cache_is_complete(directory: Path) -> bool:
    """Whether ``directory`` holds a whole cache (its meta.json is written last)."""
    return (directory / "meta.json").is_file()


def _pixels(path: Path, count: int, image_size: int) -> np.ndarray:
    shape = (count, 3, image_size, image_size)
    if count == 0:
        return np.zeros(shape, dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)


def load_image_cache(directory: Path) -> ImageCache:
    """The cache in ``directory`` (written by :func:`prepare_image_cache`), memory-mapped."""
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    size, counts = meta["image_size"], meta["counts"]
    return ImageCache(
        directory=directory,
        train_records=[TrainRecord(i, c, d, tuple(p)) for i, c, d, p in meta["train"]],
        train_pixels=_pixels(directory / "train.u8", counts["train"], size),
        train_readable=np.asarray(meta["train_readable"], dtype=bool),
        retrieval_records=[RetrievalRecord(i, tuple(c)) for i, c in meta["retrieval"]],
        retrieval_pixels=_pixels(directory / "retrieval.u8", counts["retrieval"], size),
        zeroshot_pixels=_pixels(directory / "zeroshot.u8", counts["zeroshot"], size),
        zeroshot_labels=meta["zeroshot_labels"],
        zeroshot=ZeroShotSpec(
            tuple(meta["zeroshot"]["classes"]), tuple(meta["zeroshot"]["templates"])
        ),
        vocabulary=meta["vocabulary"],
    )


def cache_entries(root: Path) -> list[tuple[Path, int]]:
    """(directory, bytes) of every cache under ``root`` (finished or being written), sorted;
    none when ``root`` does not exist. DataError when ``root`` holds anything else (so that it
    is not taken for a cache and removed)."""
    if not root.exists():
        return []
    if not root.is_dir():
        raise DataError(f"{root} is a file, not an image cache directory; check data.cache_dir")
    entries = []
    for entry in sorted(root.iterdir()):
        if not (entry.is_dir() and not entry.is_symlink() and _CACHE_ENTRY.fullmatch(entry.name)):
            raise DataError(
                f"{root} holds {entry.name!r}, which no image cache writes; it is not an image "
                "cache directory (check data.cache_dir), or remove that entry by hand"
            )
        entries.append((entry, sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())))
    return entries


def clear_image_cache(root: Path) -> list[tuple[Path, int]]:
    """Remove the image cache directory ``root`` with every cache in it; returns what it held
    (:func:`cache_entries`; DataError, with nothing removed, if it holds anything else)."""
    entries = cache_entries(root)
    if root.exists():
        shutil.rmtree(root)
    return entries
