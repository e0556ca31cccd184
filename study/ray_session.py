"""The Ray Tune side that a sweep and a confirmation share: starting or joining Ray, the
trainable with the study's resources, a fresh or restored ``tune.Tuner`` of one experiment
under the run's checkpoint root (``<run dir>/ray`` or ``[storage] checkpoints``/``<name>``),
and whether its fit was interrupted.

Every experiment keeps one checkpoint per trial, fails a trial on its first error (no retry)
and prints nothing of Ray's own (``verbose=0``; :mod:`study.progress` prints the sweep).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from study import orphan_guard
from study.checkpoint_restore import RestoreNewestCheckpoint
from study.checks import check_reachable
from study.config import StudyConfig
from study.errors import UsageError
from study.ray_env import configure_ray_env
from study.storage import location_exists
from study.train_placement import ReleasePlacementGroups

TrainFunction = Callable[..., None]  # (config, base[, workers]) -> None
DRIVER_MEMORY = 256 * 2**20  # bytes Ray reserves for the driver of a data-parallel trial


def start_ray(address: str | None) -> None:
    """Connect to the cluster at ``address``, or start a new local Ray (never a stale one a
    bootstrap file points at) whose processes a guard stops when this driver exits, however
    it ends; UsageError if the cluster is unreachable."""
    configure_ray_env()
    if address:
        check_reachable(address)
    import ray

    if ray.is_initialized():
        return
    init = functools.partial(
        ray.init,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
    )
    if not address:
        with orphan_guard.guard() as tell_session_dir:
            context = init(address="local")
            tell_session_dir(context.address_info["session_dir"])  # type: ignore[attr-defined]
        return
    try:
        init(address=address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot reach a Ray cluster at {address!r}: {first_line}; "
            "start one with `ray start --head` or leave out --address"
        ) from None


def checkpoint_root(cfg: StudyConfig) -> str:
    """Ray Tune's storage path of the run: ``<run dir>/ray`` by default, else
    ``<[storage] checkpoints>/<study name>`` (a URI or an absolute shared path)."""
    if not cfg.storage.checkpoints:
        return str(cfg.run_dir / "ray")
    return f"{cfg.storage.checkpoints.rstrip('/')}/{cfg.study.name}"


def experiment_dir(cfg: StudyConfig, experiment: str) -> str:
    """Where Ray Tune keeps the experiment ``experiment`` of the run (a path or a URI)."""
    return f"{checkpoint_root(cfg)}/{experiment}"


def experiment_exists(cfg: StudyConfig, experiment: str) -> bool:
    """Whether anything of the experiment ``experiment`` was written yet."""
    return location_exists(experiment_dir(cfg, experiment))


def can_restore(cfg: StudyConfig, experiment: str) -> bool:
    """Whether the run holds a Ray Tune experiment ``experiment`` that can be resumed."""
    from ray import tune

    return tune.Tuner.can_restore(experiment_dir(cfg, experiment))


def snapshot_trial_ids(cfg: StudyConfig, experiment: str) -> set[str]:
    """The Ray trial ids in the newest snapshot of experiment ``experiment`` of the run: the
    trials a resumed sweep knows (and reruns, when unfinished)."""
    from ray.tune import ExperimentAnalysis

    return {trial.trial_id for trial in ExperimentAnalysis(experiment_dir(cfg, experiment)).trials}


def ray_trainable(cfg: StudyConfig, function: TrainFunction):
    """``function(config, base)`` with the study's base trial config and resources.

    With ``workers_per_trial`` W > 1 the function also gets ``workers`` (a
    :class:`~study.trainable.WorkerGroup`): the Tune trial is then only the driver of its W
    Ray Train workers, which share the trial's CPUs and GPUs; as Ray's Train + Tune guide
    recommends, the driver itself asks for no CPU or GPU, only :data:`DRIVER_MEMORY` (Tune
    needs a non-empty request); ``max_concurrent`` bounds the trials in flight, and a Train
    run starts once all of its workers' resources are free.

    A restored trial whose checkpoint a kill left deleted restores its newest one instead
    (:class:`~study.checkpoint_restore.RestoreNewestCheckpoint`).
    """
    from ray import tune

    from study.trainable import WorkerGroup

    res = cfg.resources
    base = cfg.trial.to_dict()
    if res.workers_per_trial == 1:
        trainable = tune.with_parameters(function, base=base)
        resources = {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}
    else:
        workers = WorkerGroup(
            res.workers_per_trial,
            res.cpus_per_trial / res.workers_per_trial,
            res.gpus_per_trial / res.workers_per_trial,
        )
        trainable = tune.with_parameters(function, base=base, workers=workers)
        resources = {"cpu": 0, "gpu": 0, "memory": DRIVER_MEMORY}
    trainable.__mixins__ = (RestoreNewestCheckpoint,)
    return tune.with_resources(trainable, resources)


def new_tuner(
    cfg: StudyConfig,
    experiment: str,
    function: TrainFunction,
    *,
    param_space: dict | None = None,
    callbacks: list | None = None,
    **tune_config: Any,
):
    """A ``tune.Tuner`` of ``function`` for the experiment ``experiment`` of the run, with the
    study's concurrency and actor reuse; ``tune_config`` adds ``tune.TuneConfig`` arguments
    (search algorithm, scheduler, number of samples, ...).

    Data-parallel trials never reuse actors: Tune hands a finished trial's actor on only if its
    thread ends within 2 s (``TUNE_FUNCTION_THREAD_TIMEOUT_S``), and a driver still shutting
    down its Train run can miss that on a busy machine, failing the next trial ("Trainable
    runner reuse requires reset_config()"); their driver actors are cheap to start. Their Train
    runs' placement groups are removed when the trials end (:mod:`study.train_placement`)."""
    from ray import tune

    if cfg.resources.workers_per_trial > 1:
        callbacks = [*(callbacks or []), ReleasePlacementGroups()]
    return tune.Tuner(
        ray_trainable(cfg, function),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            max_concurrent_trials=cfg.resources.max_concurrent,
            reuse_actors=cfg.resources.reuse_actors and cfg.resources.workers_per_trial == 1,
            **tune_config,
        ),
        run_config=tune.RunConfig(
            name=experiment,
            storage_path=checkpoint_root(cfg),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=callbacks,
            verbose=0,
        ),
    )


def restored_tuner(cfg: StudyConfig, experiment: str, function: TrainFunction):
    """The interrupted experiment ``experiment`` of the run, to finish its unfinished trials
    (each from its last checkpoint)."""
    from ray import tune

    return tune.Tuner.restore(
        experiment_dir(cfg, experiment),
        trainable=ray_trainable(cfg, function),
        resume_unfinished=True,
    )


def interrupted(results, expected_trials: int) -> bool:
    """Whether a fit that should run ``expected_trials`` trials stopped before every one of
    them finished or failed (Ctrl-C): ``results`` is its Ray ``ResultGrid``."""
    finished = results.num_terminated + results.num_errors
    return finished < len(results) or len(results) < expected_trials
