"""Every epoch result of an experiment, appended by the driver as it arrives: the source of
``trials.parquet`` and ``confirm.parquet``.

Ray Tune's own history of a trial (``Result.metrics_dataframe``) starts again when a trial with
no Tune checkpoint is resumed, and a data-parallel trial's checkpoints are Ray Train's: after a
kill -9 and ``--resume`` it lacks the epochs before the kill. This log, ``<experiment>_epochs
.jsonl`` in the run directory, is one JSON line per result (Ray trial id, the trial's config,
the metric columns, and ``received_s``: the driver's ``time.time()`` when the result arrived,
for timing studies such as benchmarks/sweep_overhead.py), written and closed at once, so a
kill loses at most the line being written (skipped when read). An epoch a resumed trial reports
again appears twice; training resumes exactly, and :func:`read_epoch_log` keeps the last. The
log's path is fixed when the experiment starts (Ray restores its callbacks as they were).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ray.tune import Callback

from study.results import METRIC_COLUMNS


def epoch_log_path(run_dir: Path, experiment: str) -> Path:
    """Where the epoch log of experiment ``experiment`` (``sweep``, ``confirm``) lives."""
    return run_dir / f"{experiment}_epochs.jsonl"


class EpochLog(Callback):
    """Appends each trial result to the log at ``path`` (created when missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if "epoch" not in result:
            return
        metrics = {c: result[c] for c in METRIC_COLUMNS if c in result}
        entry = {"trial_id": trial.trial_id, "config": trial.config, **metrics}
        line = json.dumps({**entry, "received_s": time.time()})
        with self.path.open("a") as log:
            log.write(line + "\n")


@dataclass(frozen=True)
class TrialHistory:
    """What a trial reported: its Ray id, its config, one row per epoch (metric columns)."""

    trial_id: str
    config: dict
    epochs: pd.DataFrame


def read_epoch_log(path: Path) -> list[TrialHistory]:
    """The trials of the log at ``path`` in order of their first result (none when it does not
    exist), each epoch's last report only, metric columns only."""
    if not path.exists():
        return []
    lines: dict[str, list[dict]] = {}
    configs: dict[str, dict] = {}
    for line in _whole_lines(path.read_text().splitlines()):
        trial_id = line["trial_id"]
        configs[trial_id] = line["config"]
        lines.setdefault(trial_id, []).append({c: line[c] for c in METRIC_COLUMNS if c in line})
    return [
        TrialHistory(
            trial_id,
            configs[trial_id],
            pd.DataFrame(rows).drop_duplicates("epoch", keep="last").reset_index(drop=True),
        )
        for trial_id, rows in lines.items()
    ]


def _whole_lines(texts: Iterable[str]) -> Iterable[dict]:
    """The lines that parse: a kill can cut the last one short."""
    for text in texts:
        try:
            yield json.loads(text)
        except json.JSONDecodeError:
            continue
