"""Checks of what a study reads outside its study file, made before any Ray trial starts:
the dataset, the towers' weights and the Ray cluster address. Each failure is a one-line
:class:`UsageError`."""

from __future__ import annotations

import socket
from pathlib import Path

from study.config import StudyConfig
from study.errors import UsageError
from trainables.data import DataError
from trainables.source_check import check_sources


def check_data(cfg: StudyConfig) -> None:
    """Check the study's data (schema, row counts, a few images; not every image or caption:
    :mod:`trainables.source_check`); UsageError on any problem."""
    if not Path(cfg.trial.data.dir).is_dir():
        raise UsageError(
            f"data directory {cfg.trial.data.dir} does not exist; "
            "create it with `clipstudy data synth DIR` or set data.dir"
        )
    try:
        check_sources(cfg.trial.data, cfg.trial.image_size)
    except DataError as exc:
        raise UsageError(str(exc)) from None


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast for a cluster nobody answers at (ray.init would retry a dead GCS for
    minutes): ``auto`` is resolved as Ray resolves it (``RAY_ADDRESS``, else the bootstrap
    file of the last ``ray start``, which outlives a dead head), then its ``host:port`` must
    accept a connection within ``timeout_s``. ``ray://`` client addresses are left to Ray."""
    if "://" in address:
        return
    target = _resolve_auto(address) if address == "auto" else address
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        found = f" (found {target} for 'auto')" if target != address else ""
        raise UsageError(
            f"cannot reach a Ray cluster at {address!r}{found} ({exc}); "
            "start one with `ray start --head` or leave out --address"
        ) from None


def _resolve_auto(address: str) -> str:
    """The ``host:port`` that ``ray.init(address="auto")`` would join on this machine."""
    from ray._private.services import get_ray_address_from_environment

    try:
        return get_ray_address_from_environment(address, None)
    except ConnectionError:
        raise UsageError(
            "--address auto found no running Ray cluster on this machine; start one with "
            "`ray start --head` or pass --address HOST:PORT"
        ) from None


def check_model(cfg: StudyConfig) -> None:
    """Load the configured pretrained towers and tokenizer from their local files once (the
    small towers need none); UsageError naming the missing or unfitting path or cache."""
    if not cfg.trial.model.reads_files:
        return  # and the driver need not import the towers' libraries
    from trainables.model import ModelError, check_towers

    try:
        check_towers(cfg.trial.model, cfg.trial.max_length)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
