"""Environment Ray needs on these machines, set before Ray starts (driver and workers)."""

from __future__ import annotations

import os

RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # bind local Ray to 127.0.0.1
    "RAY_AUTH_MODE": "disabled",  # no token file under ~/.ray
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0: no Ray tables; study.progress prints
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "HF_HUB_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_V2_ENABLED": "1",  # data-parallel trials use Ray Train V2 (study.trainable)
}


def configure_ray_env() -> None:
    """Set every variable of :data:`RAY_ENV` that the user has not set."""
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
