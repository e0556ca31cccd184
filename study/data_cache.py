"""The driver's one decoding of a study's images (:mod:`trainables.image_cache`)."""

from __future__ import annotations

import time
from pathlib import Path

from study.config import StudyConfig
from study.errors import UsageError
from trainables.data import DataError
from trainables.image_cache import prepare_image_cache


def prepare_data(cfg: StudyConfig) -> Path:
    """Decode the study's images into the image cache once, before any trial starts (every
    trial then memory-maps it); UsageError on unreadable evaluation images. Returns its path."""
    start = time.perf_counter()
    try:
        directory, built = prepare_image_cache(cfg.trial.data, cfg.trial.image_size)
    except DataError as exc:
        raise UsageError(str(exc)) from None
    done = f"decoded in {time.perf_counter() - start:.1f} s" if built else "reused"
    print(f"image cache: {directory} ({done})")
    return directory
