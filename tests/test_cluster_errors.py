"""Cluster settings given wrong: one line, exit status 2, before any Ray starts (``ray.init``
fails the test here, see tests/cli_helpers.py), within seconds; and the ``[storage]`` section
read as documented, including the old ``[study] storage`` key of existing run directories."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_helpers import BASE, _no_ray, expect_usage_error  # noqa: F401 (_no_ray: autouse)

from study.checks import resource_problem
from study.config import load_config, to_toml
from study.errors import UsageError
from study.ray_session import checkpoint_root, experiment_dir

DEAD_HEAD = "127.0.0.1:9"  # what the bootstrap file of a `ray start --head` that died names


def write_study(tmp_path: Path, data: Path, extra: str = "") -> Path:
    """The error tests' study file, its runs under ``tmp_path``, with ``extra`` appended."""
    runs = json.dumps(str(tmp_path / "runs"))
    text = BASE.replace("DATA_DIR", str(data)).replace(
        "[scheduler]", f"runs_dir = {runs}\n\n[scheduler]"
    )
    path = tmp_path / "study.toml"
    path.write_text(text + extra)
    return path


def _expect_dead_head_error(capsys, tmp_path: Path, data: Path) -> None:
    config = write_study(tmp_path, data)
    started = time.monotonic()
    expect_usage_error(
        capsys,
        ["sweep", str(config), "--address", "auto"],
        "cannot reach a Ray cluster at 'auto'",
        f"found {DEAD_HEAD}",
        "ray start --head",
    )
    assert time.monotonic() - started < 10
    assert not (tmp_path / "runs").exists()


def test_address_auto_with_a_stale_bootstrap_file_fails_in_seconds(
    capsys, tmp_path, tiny_dataset, monkeypatch
):
    """The bootstrap file outlives its head; ``auto`` reads it (as Ray does) and fails fast.
    Ray's ``auto`` would join any other live Ray on the machine first (its legacy rule), so
    the test says there is none: other test runs on a shared machine may have one."""
    import ray._private.services

    ray_tmpdir = tmp_path / "raytmp"
    (ray_tmpdir / "ray").mkdir(parents=True)
    (ray_tmpdir / "ray" / "ray_current_cluster").write_text(DEAD_HEAD)
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmpdir))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray._private.services, "find_gcs_addresses", frozenset)
    _expect_dead_head_error(capsys, tmp_path, tiny_dataset)


def test_address_auto_with_a_stale_ray_address_fails_in_seconds(
    capsys, tmp_path, tiny_dataset, monkeypatch
):
    monkeypatch.setenv("RAY_ADDRESS", DEAD_HEAD)  # left in the shell from a dead cluster
    _expect_dead_head_error(capsys, tmp_path, tiny_dataset)


@pytest.mark.parametrize(
    ("resources", "words"),
    [
        (
            "cpus_per_trial = 4096\ngpus_per_trial = 0",
            ["this machine has", "short of the 4096 CPUs and 0 GPUs"],
        ),
        (
            "cpus_per_trial = 2\ngpus_per_trial = 64\nworkers_per_trial = 2",
            ["this machine has room for 0 of the 2 workers", "1 CPUs and 32 GPUs"],
        ),
    ],
)
def test_a_trial_this_machine_cannot_hold_is_refused_before_ray_starts(
    capsys, tmp_path, tiny_dataset, resources, words
):
    config = write_study(tmp_path, tiny_dataset)
    text = config.read_text().replace("cpus_per_trial = 1\ngpus_per_trial = 0", resources)
    config.write_text(text)
    expect_usage_error(capsys, ["sweep", str(config)], *words, "lower [resources]", "--address")
    assert not (tmp_path / "runs").exists()


def test_the_workers_of_a_trial_may_spread_over_the_nodes(tmp_path, tiny_dataset):
    """Two workers of 1 CPU and 1 GPU each: two one-GPU nodes hold them, one node does not."""
    config = write_study(tmp_path, tiny_dataset)
    cfg = load_config(
        config,
        [
            "resources.cpus_per_trial=2",
            "resources.gpus_per_trial=2",
            "resources.workers_per_trial=2",
        ],
    )
    assert resource_problem(cfg, [(8.0, 1.0), (8.0, 1.0)], on_cluster=True) is None
    assert resource_problem(cfg, [(8.0, 2.0)], on_cluster=True) is None
    problem = resource_problem(cfg, [(8.0, 1.0), (0.5, 4.0)], on_cluster=True)
    assert problem == (
        "the cluster has room for 1 of the 2 workers of one trial, each with 1 CPUs and 1 GPUs "
        "(cpus_per_trial and gpus_per_trial over workers_per_trial; the largest node has "
        "8 CPUs, 1 GPUs); lower [resources] cpus_per_trial/gpus_per_trial/workers_per_trial "
        "or add such a node"
    )


def test_relative_checkpoint_path_is_refused(capsys, tmp_path, tiny_dataset):
    config = write_study(tmp_path, tiny_dataset, '[storage]\ncheckpoints = "ckpt"\n')
    expect_usage_error(
        capsys, ["sweep", str(config)], "storage.checkpoints", "absolute path", "'ckpt'"
    )


def test_storage_key_typo_is_named(capsys, tmp_path, tiny_dataset):
    config = write_study(tmp_path, tiny_dataset, '[storage]\ncheckpoint = "/shared/x"\n')
    expect_usage_error(
        capsys, ["sweep", str(config)], "unknown key storage.checkpoint", "'checkpoints'"
    )


def test_storage_section_sets_where_a_run_keeps_its_state(tmp_path, tiny_dataset):
    url = "postgresql://clipstudy@db.example/studies"
    config = write_study(
        tmp_path,
        tiny_dataset,
        f'[storage]\ncheckpoints = "s3://bucket/prefix/"\noptuna = "{url}"\n',
    )
    cfg = load_config(config)
    assert cfg.storage_url == url
    assert checkpoint_root(cfg) == "s3://bucket/prefix/cli-errors"
    assert experiment_dir(cfg, "sweep") == "s3://bucket/prefix/cli-errors/sweep"
    written = tmp_path / "written.toml"
    written.write_text(to_toml(cfg))
    assert load_config(written).storage == cfg.storage

    default = load_config(write_study(tmp_path, tiny_dataset))
    assert checkpoint_root(default) == str(default.run_dir / "ray")
    assert default.storage_url == f"sqlite:///{default.run_dir / 'optuna.db'}"


def test_old_study_storage_key_is_still_read(tmp_path, tiny_dataset):
    """Run directories written before [storage] hold ``[study] storage``: still read."""
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    old = write_study(tmp_path, tiny_dataset)
    old.write_text(old.read_text().replace("[scheduler]", f'storage = "{url}"\n[scheduler]'))
    assert load_config(old).storage_url == url
    old.write_text(old.read_text().replace(f'storage = "{url}"', 'storage = ""'))
    assert load_config(old).storage.optuna == ""

    both = write_study(tmp_path, tiny_dataset, '[storage]\noptuna = "sqlite:///other.db"\n')
    both.write_text(both.read_text().replace("[scheduler]", f'storage = "{url}"\n[scheduler]'))
    with pytest.raises(UsageError, match=r"study.storage and storage.optuna are both set"):
        load_config(both)
