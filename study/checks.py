"""Checks of what a study reads outside its study file, made before any Ray trial starts:
the dataset, the towers' weights and the Ray cluster address. Each failure is a one-line
:class:`UsageError`."""

from __future__ import annotations

import socket
from pathlib import Path

from study.config import StudyConfig
from study.errors import UsageError
from trainables.data import DataError
from trainables.trial_data import load_trial_data


def check_data(cfg: StudyConfig) -> None:
    """Read every annotation file of the study's data; UsageError on any problem."""
    if not Path(cfg.trial.data.dir).is_dir():
        raise UsageError(
            f"data directory {cfg.trial.data.dir} does not exist; "
            "create it with `clipstudy data synth DIR` or set data.dir"
        )
    try:
        load_trial_data(cfg.trial)
    except DataError as exc:
        raise UsageError(str(exc)) from None


def check_reachable(address: str, timeout_s: float = 3.0) -> None:
    """Fail fast for a ``host:port`` nobody listens on (ray.init would retry for minutes)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot reach a Ray cluster at {address!r} ({exc}); "
            "start one with `ray start --head` or leave out --address"
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
