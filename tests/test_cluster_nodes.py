"""A real two-node Ray cluster on this machine (a head, and a second node joined with
``ray start --address`` under another node IP and with its own custom resource): a sweep with
``--address`` places trials on both nodes and ends complete, and the preflight reports what a
trial would trip over (too few CPUs, unwritable checkpoint storage, data missing on a node)
in one line each before any trial starts.

The cluster is started once for the module; every driver runs in a subprocess (a driver in
the pytest process would stay connected to it).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cluster_helpers import BIN, SECOND_NODE_IP, ray_env, two_node_cluster
from test_sweep import assert_truthful, trials_of
from test_sweep import write_config as write_sweep_config

NAME = "two-nodes"


@pytest.fixture(scope="module")
def cluster():
    with two_node_cluster(head_cpus=1, second_cpus=1) as (address, tmpdir):
        yield address, ray_env(tmpdir)


def test_sweep_places_trials_on_both_nodes_and_completes(cluster, tiny_dataset, tmp_path):
    """One CPU per node and two trials at once, each in a fresh actor (a reused one could run
    every trial while the other node's actor is still starting): Ray must use both nodes."""
    address, env = cluster
    config = write_sweep_config(tmp_path, tiny_dataset, name=NAME, trials_per_cell=1)
    text = config.read_text().replace("max_concurrent = 1", "max_concurrent = 2")
    config.write_text(text.replace("[resources]", "[resources]\nreuse_actors = false"))
    done = subprocess.run(
        [str(BIN / "clipstudy"), "sweep", str(config), "--address", address],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = tmp_path / "runs" / NAME
    trials = trials_of(run_dir)
    assert len(trials) == 2 and all(t.state.is_finished() for t in trials)
    assert_truthful(trials)
    results = [
        json.loads(line)
        for path in (run_dir / "ray" / "sweep").glob("trial_*/result.json")
        for line in path.read_text().splitlines()
    ]
    node_ips = {result["node_ip"] for result in results}
    assert len(node_ips) == 2 and SECOND_NODE_IP in node_ips, node_ips
    assert {result["trial_id"] for result in results} == {
        t.user_attrs["ray_trial_id"] for t in trials
    }


PREFLIGHT = """
import json, sys
from pathlib import Path
from study.config import load_config
from study.errors import UsageError
from study.preflight import run_preflight
from study.ray_session import start_ray

config, address, *overrides = sys.argv[1:]
start_ray(address)
problems = {}
for override in ["", *overrides]:
    cfg = load_config(Path(config), [override] if override else [])
    try:
        run_preflight(cfg)
        problems[override] = None
    except UsageError as exc:
        problems[override] = str(exc)
print(json.dumps(problems))
"""


def test_preflight_names_each_problem_in_one_line(cluster, tiny_dataset, tmp_path):
    address, env = cluster
    config = write_sweep_config(tmp_path, tiny_dataset, name="preflight", trials_per_cell=1)
    storage = tmp_path / "checkpoints"
    overrides = [
        "resources.cpus_per_trial=4",
        f'storage.checkpoints="{storage}"',
        'storage.checkpoints="/proc/clipstudy-checkpoints"',
        'data.train_json="not-on-any-node.json"',
    ]
    done = subprocess.run(
        [sys.executable, "-c", PREFLIGHT, str(config), address, *overrides],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    problems = json.loads(done.stdout.strip().splitlines()[-1])
    for problem in problems.values():
        assert problem is None or "\n" not in problem
    assert problems[""] is None  # the run directory's default storage: this machine's disk
    assert problems[overrides[1]] is None
    assert [path for path in storage.rglob("*") if path.is_file()] == []  # probes removed
    assert problems[overrides[0]].startswith("no node of the cluster has the 4 CPUs")
    assert "cpus_per_trial" in problems[overrides[0]]
    assert (
        "cannot write and read the checkpoint storage /proc/clipstudy-checkpoints"
        in (problems[overrides[2]])
    )
    assert "not-on-any-node.json" in problems[overrides[3]]
    assert "copy the dataset" in problems[overrides[3]]
