"""Preflight of a sweep or a confirmation on a Ray cluster (``--address``), before any trial
starts.

One tiny task pinned to every alive node writes a probe file into the run's checkpoint
storage, reads it back and looks for the study's data files; the driver then reads every
node's probe too, so a path that is not really shared between the nodes fails here rather than
at the first resume. The cluster must also have room for the workers of one trial, with the
CPUs and GPUs each asks for, or Ray would wait for them forever. Each failure is one line
naming the node and the fix (:class:`UsageError`, exit status 2).
"""

from __future__ import annotations

import os
import socket
import uuid
from contextlib import suppress
from dataclasses import dataclass

from study.checks import resource_problem
from study.config import StudyConfig
from study.errors import UsageError
from study.ray_session import checkpoint_root
from study.storage import checkpoint_filesystem

DATA_FIELDS = (
    "train_json",
    "train_images",
    "retrieval_json",
    "retrieval_images",
    "zeroshot_dir",
    "zeroshot_classes",
)
TASK_TIMEOUT_S = 60.0  # a node whose task has not run by then is reported
SHARED_FIX = "set [storage] checkpoints to s3://bucket/prefix or a path every node mounts"


@dataclass(frozen=True)
class NodeReport:
    """What the probe task saw on one node: where it ran and the problems it found."""

    node: str  # "hostname (node id prefix)"
    probe: str  # the probe file it wrote, "" when it could not
    problems: list[str]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def probe_node(location: str, probe_dir: str, data_paths: list[str]) -> NodeReport:
    """Run on one node: write and read back ``<probe_dir>/<node id>`` in the checkpoint
    storage ``location`` and check that every path of ``data_paths`` exists there."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    node = f"{socket.gethostname()} ({node_id[:8]})"
    problems = []
    probe = f"{probe_dir}/{node_id}"
    try:
        filesystem, _ = checkpoint_filesystem(location)
        filesystem.create_dir(probe_dir, recursive=True)
        with filesystem.open_output_stream(probe) as out:
            out.write(node_id.encode())
        with filesystem.open_input_stream(probe) as back:
            if back.read() != node_id.encode():
                raise OSError("what was read back differs from what was written")
    except Exception as exc:  # pyarrow, OS and credential errors alike
        problems.append(
            f"node {node} cannot write and read the checkpoint storage {location} "
            f"({_first_line(exc)}); fix its permissions or credentials on that node, or "
            f"{SHARED_FIX}"
        )
        probe = ""
    missing = [path for path in data_paths if not os.path.exists(path)]
    if missing:
        problems.append(
            f"node {node} has no {missing[0]} (data.dir as the driver resolved it); copy the "
            "dataset to the same path on every node, or put it on a shared filesystem"
        )
    return NodeReport(node, probe, problems)


def _probe_every_node(location: str, probe_dir: str, data_paths: list[str]) -> list[NodeReport]:
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    task = ray.remote(num_cpus=0, max_retries=0)(probe_node)
    nodes = [node for node in ray.nodes() if node["Alive"]]
    refs = {
        node["NodeID"]: task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        ).remote(location, probe_dir, data_paths)
        for node in nodes
    }
    reports = []
    for node_id, ref in refs.items():
        try:
            reports.append(ray.get(ref, timeout=TASK_TIMEOUT_S))
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            reports.append(
                NodeReport(
                    node_id[:8],
                    "",
                    [
                        f"node {node_id[:8]} ran no preflight task within {TASK_TIMEOUT_S:.0f}"
                        " s; check that node with `ray status` or remove it from the cluster"
                    ],
                )
            )
        except ray.exceptions.RayError as exc:
            reports.append(
                NodeReport(
                    node_id[:8],
                    "",
                    [
                        f"node {node_id[:8]} could not run clipstudy's preflight task "
                        f"({_first_line(exc)}); install clipstudy and its dependencies "
                        "on every node"
                    ],
                )
            )
    return reports


def run_preflight(cfg: StudyConfig) -> None:
    """Check the cluster Ray is connected to for ``cfg`` (see the module docstring); the
    first problem found is raised as a UsageError, and the probe files are removed."""
    import ray

    nodes = [
        (node["Resources"].get("CPU", 0.0), node["Resources"].get("GPU", 0.0))
        for node in ray.nodes()
        if node["Alive"]
    ]
    problem = resource_problem(cfg, nodes, on_cluster=True)
    if problem:
        raise UsageError(problem)
    location = checkpoint_root(cfg)
    filesystem, root = checkpoint_filesystem(location)
    probe_dir = f"{root.rstrip('/')}/.clipstudy-preflight-{uuid.uuid4().hex[:12]}"
    data_paths = [str(cfg.trial.data.path(name)) for name in DATA_FIELDS]
    try:
        reports = _probe_every_node(location, probe_dir, data_paths)
        problems = [line for report in reports for line in report.problems]
        for report in reports:
            if report.probe and not _readable(filesystem, report.probe):
                problems.append(
                    f"the driver cannot read what node {report.node} wrote to the checkpoint "
                    f"storage {location}: it is not shared between them; {SHARED_FIX}"
                )
    finally:
        _remove(filesystem, probe_dir)
    if problems:
        raise UsageError(problems[0])


def _readable(filesystem, path: str) -> bool:
    try:
        with filesystem.open_input_stream(path) as back:
            back.read()
        return True
    except OSError:
        return False


def _remove(filesystem, path: str) -> None:
    with suppress(OSError):  # nothing was written there
        filesystem.delete_dir(path)
