"""The driver's check of a dataset before any trial starts: every annotation file's schema,
the row counts and a few images of each split (train images must exist, evaluation images
decode). It reads neither every image nor every
caption into the vocabulary (the image cache does that once, after the check), so it takes
seconds on millions of rows (benchmarks/data_check.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trainables.config import DataPaths
from trainables.data import (
    DataError,
    list_image_folder,
    read_retrieval_annotations,
    read_zeroshot_classes,
)
from trainables.image_cache import check_class_folders, decode_source, unreadable_evaluation_image
from trainables.train_sources import sample_train_source

SAMPLED_IMAGES = 4  # looked at per split


@dataclass(frozen=True)
class DataSummary:
    """Counts found by the check; ``train_pairs`` is None for shards without stats files."""

    train_pairs: int | None
    retrieval_images: int
    zeroshot_images: int


def _check_evaluation_images(paths: list[Path], image_size: int) -> None:
    for path in paths:
        problem = decode_source(path, image_size)
        if isinstance(problem, str):
            raise unreadable_evaluation_image(path, problem)


def check_sources(paths: DataPaths, image_size: int) -> DataSummary:
    """Check ``paths`` (module docstring); DataError, one line, on the first problem. Train
    images may be unreadable (trials skip and count them, and fail above
    trial.max_bad_image_fraction), but not every sampled one missing: that is a wrong image
    root rather than a few bad files."""
    total, train = sample_train_source(paths, SAMPLED_IMAGES)
    if not train:
        raise DataError("the train data holds no samples (check data.train_shards)")
    files = [source for _, source in train if isinstance(source, Path)]
    if len(files) == len(train) and not any(path.is_file() for path in files):
        raise DataError(
            f"none of the {len(train)} sampled train images exists, first {files[0]} "
            "(check data.train_images, relative to data.dir)"
        )
    retrieval = read_retrieval_annotations(paths.path("retrieval_json"))
    root = paths.path("retrieval_images")
    _check_evaluation_images([root / r.image for r in retrieval[:SAMPLED_IMAGES]], image_size)
    zeroshot = read_zeroshot_classes(paths.path("zeroshot_classes"))
    classes = list_image_folder(paths.path("zeroshot_dir"))
    check_class_folders(paths, zeroshot, classes)
    step = max(1, len(classes) // SAMPLED_IMAGES)
    _check_evaluation_images([Path(p) for p, _ in classes[::step][:SAMPLED_IMAGES]], image_size)
    return DataSummary(total, len(retrieval), len(classes))
