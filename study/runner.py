"""A sweep: Ray Tune places the trials, Optuna samples and records them, ASHA stops weak ones.

Every (loss, optimizer) cell gets the same number of trials, its own Optuna study and its own
ASHA rungs (:mod:`study.per_cell`, :mod:`study.studies`), all in one Ray Tune experiment.

Flow: check everything (config, data, Ray address) -> create the run directory -> fit a
``tune.Tuner`` (or restore an interrupted one) -> fail Optuna trials no Ray trial will finish
-> write ``trials.parquet`` and print the summary.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import optuna

from study.config import StudyConfig, to_toml
from study.errors import UsageError
from study.optuna_bridge import (
    FailureRecorder,
    TruthfulOptunaSearch,
    fail_orphans,
    trial_dirname,
)
from study.per_cell import PerCellASHA, PerCellSearch
from study.progress import ProgressPrinter
from study.ray_env import configure_ray_env
from study.results import SweepSummary, summarize, trials_table, write_trials
from study.storage import open_storage
from study.studies import cell_study_name, load_cell_studies, overview_study
from trainables.data import DataError
from trainables.trial_data import load_trial_data

EXPERIMENT = "sweep"


@dataclass(frozen=True)
class SweepOutcome:
    run_dir: Path
    summary: SweepSummary
    interrupted: bool


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


def start_ray(address: str | None) -> None:
    """Connect to the cluster at ``address`` or start a local Ray; UsageError if unreachable."""
    configure_ray_env()
    if address:
        check_reachable(address)
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot reach a Ray cluster at {address!r}: {first_line}; "
            "start one with `ray start --head` or leave out --address"
        ) from None


def _storage(cfg: StudyConfig) -> optuna.storages.BaseStorage:
    return open_storage(cfg.storage_url)


def ray_trainable(cfg: StudyConfig, function):
    """``function(config, base)`` with the study's base trial config and resources."""
    from ray import tune

    resources = {"cpu": cfg.resources.cpus_per_trial, "gpu": cfg.resources.gpus_per_trial}
    return tune.with_resources(tune.with_parameters(function, base=cfg.trial.to_dict()), resources)


def _searcher(cfg: StudyConfig) -> PerCellSearch:
    """One TruthfulOptunaSearch per cell, each over its own study ``run/loss/optimizer``."""
    metric, mode = cfg.study.metric, cfg.study.mode
    storage = _storage(cfg)
    searchers = {
        cell: TruthfulOptunaSearch(
            space=cfg.space.for_cell(cell),
            metric=metric,
            mode=mode,
            storage=storage,
            study_name=cell_study_name(cfg.study.name, cell),
            seed=cfg.study.seed,
            max_epochs=cfg.scheduler.max_epochs,
        )
        for cell in cfg.cells
    }
    return PerCellSearch(searchers, cfg.study.trials_per_cell, metric, mode)


def _describe_run(cfg: StudyConfig) -> None:
    """The overview study's note: what the run is, until the report replaces it."""
    from optuna_dashboard import save_note

    overview = overview_study(_storage(cfg), cfg.study.name, cfg.study.mode)
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


def _tuner(cfg: StudyConfig, resume: bool):
    from ray import tune

    from study.trainable import train_clip

    experiment_dir = cfg.run_dir / "ray" / EXPERIMENT
    trainable = ray_trainable(cfg, train_clip)
    if resume:
        return tune.Tuner.restore(str(experiment_dir), trainable=trainable, resume_unfinished=True)
    scheduler = PerCellASHA(
        metric=cfg.study.metric,
        mode=cfg.study.mode,
        time_attr="epoch",
        max_t=cfg.scheduler.max_epochs,
        grace_period=cfg.scheduler.grace_period,
        reduction_factor=cfg.scheduler.reduction_factor,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=_searcher(cfg),
            scheduler=scheduler,
            num_samples=cfg.num_trials,
            max_concurrent_trials=cfg.resources.max_concurrent,
            reuse_actors=cfg.resources.reuse_actors,
            trial_dirname_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(cfg.run_dir / "ray"),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=[
                FailureRecorder(cfg.storage_url, cfg.study.name),
                ProgressPrinter(cfg.study.metric, cfg.study.mode, cfg.scheduler.max_epochs),
            ],
            verbose=0,
        ),
    )


def check_run_dir(cfg: StudyConfig, resume: bool) -> None:
    """A new sweep needs a fresh run directory; --resume needs a Ray experiment in it."""
    run_dir = cfg.run_dir
    if resume:
        from ray import tune

        if not tune.Tuner.can_restore(str(run_dir / "ray" / EXPERIMENT)):
            raise UsageError(
                f"{run_dir} holds no Ray experiment to resume; start a new sweep without --resume"
            )
    elif run_dir.exists():
        raise UsageError(
            f"run directory {run_dir} already exists; pass --resume to continue it "
            "or --name to start another"
        )


def run_sweep(
    cfg: StudyConfig, *, resume: bool = False, address: str | None = None
) -> SweepOutcome:
    """Run (or resume) the sweep of ``cfg``; everything is checked before the run directory
    is created, so bad input leaves nothing behind."""
    check_data(cfg)
    check_run_dir(cfg, resume)
    start_ray(address)
    if not resume:
        cfg.run_dir.mkdir(parents=True)
        (cfg.run_dir / "study.toml").write_text(to_toml(cfg))
    try:
        tuner = _tuner(cfg, resume)
        if not resume:
            _describe_run(cfg)
    except Exception:
        if not resume:
            shutil.rmtree(cfg.run_dir, ignore_errors=True)
        raise
    results = tuner.fit()
    studies = load_cell_studies(_storage(cfg), cfg.study.name)
    finished = results.num_terminated + results.num_errors
    interrupted = finished < len(results) or len(results) < cfg.num_trials
    if not interrupted:
        for study in studies.values():
            fail_orphans(study, "no Ray trial finished this trial (the sweep was interrupted)")
    write_trials(trials_table(results, studies), cfg.run_dir / "trials.parquet")
    return SweepOutcome(cfg.run_dir, summarize(studies, cfg.cells), interrupted)
