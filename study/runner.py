"""A sweep: Ray Tune places the trials, Optuna samples and records them, ASHA stops weak ones.

Every (loss, optimizer) cell gets the same number of trials, its own Optuna study and its own
ASHA rungs (:mod:`study.per_cell`, :mod:`study.studies`), all in one Ray Tune experiment.

Flow: check everything (config, data, Ray address) -> decode the images into the image cache
-> create the run directory -> fit a ``tune.Tuner`` (or restore an interrupted one) -> fail
Optuna trials no Ray trial will finish -> write ``trials.parquet`` and print the summary.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna

from study.checks import check_data, check_local_resources, check_model
from study.config import StudyConfig, to_toml
from study.data_cache import prepare_data, with_image_cache
from study.epoch_log import EpochLog, epoch_log_path, read_epoch_log
from study.errors import UsageError
from study.optuna_bridge import (
    FailureRecorder,
    TruthfulOptunaSearch,
    fail_orphans,
    requeue_lost_trials,
    trial_dirname,
)
from study.per_cell import PerCellASHA, PerCellConcurrencyLimiter, PerCellSearch
from study.preflight import run_preflight
from study.progress import ProgressPrinter
from study.ray_session import (
    can_restore,
    experiment_dir,
    experiment_exists,
    interrupted,
    new_tuner,
    restored_tuner,
    snapshot_trial_ids,
    start_ray,
)
from study.results import SweepSummary, summarize, trials_table, write_trials
from study.samplers import build_sampler
from study.storage import open_sweep_storage
from study.studies import cell_study_name, load_cell_studies, overview_study

EXPERIMENT = "sweep"


@dataclass(frozen=True)
class SweepOutcome:
    run_dir: Path
    summary: SweepSummary
    interrupted: bool


def build_searcher(
    cfg: StudyConfig, storage: optuna.storages.BaseStorage | None = None
) -> PerCellSearch:
    """One TruthfulOptunaSearch per cell, each over its own study ``run/loss/optimizer`` in
    ``storage`` (default: the study's, opened for the sweep) with its own sampler of the study
    file's ``[sampler]`` kind (:mod:`study.samplers`)."""
    metric, mode = cfg.study.metric, cfg.study.mode
    storage = storage or open_sweep_storage(cfg.storage_url)
    searchers = {
        cell: TruthfulOptunaSearch(
            space=cfg.space.for_cell(cell),
            metric=metric,
            mode=mode,
            storage=storage,
            study_name=cell_study_name(cfg.study.name, cell),
            sampler=build_sampler(cfg.sampler, cfg.study.trials_per_cell, cfg.study.seed),
            max_epochs=cfg.scheduler.max_epochs,
        )
        for cell in cfg.cells
    }
    return PerCellSearch(
        searchers, cfg.study.trials_per_cell, metric, mode, warm_start=cfg.sampler.warm_start
    )


def build_scheduler(cfg: StudyConfig) -> PerCellASHA:
    """ASHA over epochs within each cell, with the study file's ``[scheduler]`` settings."""
    return PerCellASHA(
        metric=cfg.study.metric,
        mode=cfg.study.mode,
        time_attr="epoch",
        max_t=cfg.scheduler.max_epochs,
        grace_period=cfg.scheduler.grace_period,
        reduction_factor=cfg.scheduler.reduction_factor,
    )


def _describe_run(cfg: StudyConfig, storage: optuna.storages.BaseStorage) -> None:
    """The overview study's note: what the run is, until the report replaces it."""
    from optuna_dashboard import save_note

    overview = overview_study(storage, cfg.study.name, cfg.study.mode)
    studies = "\n".join(f"- `{cell_study_name(cfg.study.name, c)}`" for c in cfg.cells)
    save_note(
        overview,
        f"## Sweep {cfg.study.name}\n\nEvery (loss, optimizer) cell is tuned in its own study "
        f"with {cfg.study.trials_per_cell} trials and its own ASHA rungs "
        f"(grace {cfg.scheduler.grace_period} epochs, reduction {cfg.scheduler.reduction_factor},"
        f" full budget {cfg.scheduler.max_epochs} epochs; metric {cfg.study.metric}, "
        f"{cfg.study.mode}). This study holds no trials: after `clipstudy confirm` and "
        f"`clipstudy report` it shows the verdict.\n\n{studies}",
    )


def _tuner(cfg: StudyConfig, resume: bool, storage: optuna.storages.BaseStorage):
    """The sweep's Tuner: restored when resuming, else per-cell search (over ``storage``)
    and ASHA."""
    from study.trainable import train_clip

    if resume:
        tuner = restored_tuner(cfg, EXPERIMENT, train_clip)
        requeue_lost_trials(storage, cfg.study.name, snapshot_trial_ids(cfg, EXPERIMENT))
        return tuner
    return new_tuner(
        cfg,
        EXPERIMENT,
        train_clip,
        callbacks=[
            EpochLog(epoch_log_path(cfg.run_dir, EXPERIMENT)),
            FailureRecorder(cfg.storage_url, cfg.study.name),
            ProgressPrinter(cfg.study.metric, cfg.study.mode, cfg.scheduler.max_epochs),
        ],
        search_alg=PerCellConcurrencyLimiter(
            build_searcher(cfg, storage), max_concurrent=cfg.resources.max_concurrent
        ),
        scheduler=build_scheduler(cfg),
        num_samples=cfg.num_trials,
        trial_dirname_creator=trial_dirname,
    )


def check_run_dir(cfg: StudyConfig, resume: bool) -> None:
    """A new sweep needs a fresh run directory; --resume needs a Ray experiment in it."""
    run_dir = cfg.run_dir
    if resume:
        if not can_restore(cfg, EXPERIMENT):
            raise UsageError(
                f"{run_dir} holds no Ray experiment to resume; start a new sweep without --resume"
            )
    elif run_dir.exists():
        raise UsageError(
            f"run directory {run_dir} already exists; pass --resume to continue it "
            "or --name to start another"
        )
    elif cfg.storage.checkpoints and experiment_exists(cfg, EXPERIMENT):
        raise UsageError(
            f"the checkpoint storage already holds {experiment_dir(cfg, EXPERIMENT)}; "
            "pass --name to start another run, or delete it"
        )


def run_sweep(
    cfg: StudyConfig, *, resume: bool = False, address: str | None = None
) -> SweepOutcome:
    """Run (or resume) the sweep of ``cfg``; everything is checked before the run directory
    is created, so bad input leaves nothing behind."""
    check_model(cfg)
    check_data(cfg)
    if not address:  # a cluster's resources are checked by the preflight
        check_local_resources(cfg)
    check_run_dir(cfg, resume)
    cfg = with_image_cache(cfg, prepare_data(cfg))  # decode once; the trials memory-map it
    start_ray(address)
    if not resume:
        cfg.run_dir.mkdir(parents=True)
        (cfg.run_dir / "study.toml").write_text(to_toml(cfg))
    try:
        if address:
            run_preflight(cfg)
        storage = open_sweep_storage(cfg.storage_url)  # opened once, for all the sweep
        tuner = _tuner(cfg, resume, storage)
        if not resume:
            _describe_run(cfg, storage)
    except Exception:
        if not resume:
            shutil.rmtree(cfg.run_dir, ignore_errors=True)
        raise
    results = tuner.fit()
    studies = load_cell_studies(storage, cfg.study.name)
    stopped = interrupted(results, cfg.num_trials)
    if not stopped:
        for study in studies.values():
            reason = "no Ray trial finished this trial (the sweep was interrupted)"
            fail_orphans(storage, study, reason)
    histories = read_epoch_log(epoch_log_path(cfg.run_dir, EXPERIMENT))
    write_trials(trials_table(histories, studies), cfg.run_dir / "trials.parquet")
    return SweepOutcome(cfg.run_dir, summarize(studies, cfg.cells), stopped)
