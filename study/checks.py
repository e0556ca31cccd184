"""Checks of what a study reads outside its study file, made before any Ray trial starts:
the dataset, the towers' weights, the Ray cluster address and whether this machine (or the
cluster, :func:`resource_problem` from :mod:`study.preflight`) has the resources of one trial.
Each failure is a one-line :class:`UsageError`."""

from __future__ import annotations

import math
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


def resource_problem(
    cfg: StudyConfig, nodes: list[tuple[float, float]], on_cluster: bool
) -> str | None:
    """A line saying that the (CPUs, GPUs) of ``nodes`` cannot hold one trial, or None.

    One trial is W = ``workers_per_trial`` workers of cpus_per_trial/W CPUs and
    gpus_per_trial/W GPUs each (W = 1: the trial itself); Ray places each worker on one node,
    so a node of c CPUs and g GPUs holds ⌊c / (cpus/W)⌋ and ⌊g / (gpus/W)⌋ of them, whichever
    is fewer. Without room for W, Ray would wait for it forever.
    """
    res = cfg.resources
    workers = res.workers_per_trial
    cpus, gpus = res.cpus_per_trial / workers, res.gpus_per_trial / workers
    room = sum(_workers_fitting(c, g, cpus, gpus) for c, g in nodes)
    if room >= workers:
        return None
    best = max(nodes, default=(0.0, 0.0))
    largest = f"{best[0]:g} CPUs, {best[1]:g} GPUs"
    need = f"{cpus:g} CPUs and {gpus:g} GPUs"
    if workers > 1:
        where = "the cluster" if on_cluster else "this machine"
        problem = (
            f"{where} has room for {room} of the {workers} workers of one trial, each with "
            f"{need} (cpus_per_trial and gpus_per_trial over workers_per_trial; "
            f"{'the largest node has' if on_cluster else 'it has'} {largest})"
        )
    elif on_cluster:
        problem = (
            f"no node of the cluster has the {need} one trial asks for (the largest have {largest})"
        )
    else:
        problem = f"this machine has {largest}, short of the {need} one trial asks for"
    knobs = "cpus_per_trial/gpus_per_trial" + ("/workers_per_trial" if workers > 1 else "")
    more = "add such a node" if on_cluster else "pass --address of a Ray cluster that has them"
    return f"{problem}; lower [resources] {knobs} or {more}"


def _workers_fitting(node_cpus: float, node_gpus: float, cpus: float, gpus: float) -> int:
    """How many workers of ``cpus`` CPUs and ``gpus`` GPUs a node of that many holds."""
    fits = math.floor(node_cpus / cpus + 1e-9)
    return fits if gpus == 0 else min(fits, math.floor(node_gpus / gpus + 1e-9))


def check_local_resources(cfg: StudyConfig) -> None:
    """Without ``--address``: the local Ray clipstudy starts gets this machine's CPUs and GPUs
    (as Ray counts them: cgroup limits, ``CUDA_VISIBLE_DEVICES``); UsageError unless one trial
    fits (:func:`resource_problem`)."""
    from ray._private.accelerators import get_accelerator_manager_for_resource
    from ray._private.utils import get_num_cpus

    manager = get_accelerator_manager_for_resource("GPU")  # NVIDIA's
    gpus = manager.get_current_node_num_accelerators() if manager else 0
    problem = resource_problem(cfg, [(float(get_num_cpus()), float(gpus))], on_cluster=False)
    if problem:
        raise UsageError(problem)
