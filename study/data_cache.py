"""The driver's one decoding of a study's images (:mod:`trainables.image_cache`)."""

from __future__ import annotations

import dataclasses
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


def with_image_cache(cfg: StudyConfig, directory: Path) -> StudyConfig:
    """``cfg`` whose trials open the image cache in ``directory`` (the driver's, from
    :func:`prepare_data`) without reading and fingerprinting the data files again; a trial on a
    machine without that directory finds or builds its own (:mod:`trainables.trial_data`)."""
    return dataclasses.replace(
        cfg, trial=dataclasses.replace(cfg.trial, image_cache=str(directory))
    )
