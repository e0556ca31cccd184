"""Bad input to ``clipstudy``: one line on stderr, exit status 2, no traceback, nothing left.

Each case calls :func:`study.cli.main` in-process with ``ray.init`` replaced by a function that
fails the test, so a problem that is only noticed once Ray is up counts as a failure: every
check must happen before any Ray (let alone a trial) starts. Sweeps write into a fresh
``runs`` directory under ``tmp_path`` (``--set study.runs_dir=...``), which must stay absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import (  # _no_ray: an autouse fixture, applied by importing it
    BASE,
    NAME,
    _no_ray,  # noqa: F401
    expect_usage_error,
)
from cluster_helpers import free_port


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """The runs directory every sweep of a test writes to (absent until something is left)."""
    return tmp_path / "runs"


def write_config(tmp_path: Path, data_dir: Path, text: str = BASE) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text.replace("DATA_DIR", str(data_dir)))
    return path


def copy_dataset(tiny_dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(tiny_dataset, copy)
    return copy


def runs_dir_set(runs: Path) -> list[str]:
    return ["--set", f"study.runs_dir={json.dumps(str(runs))}"]


def expect_sweep_error(capsys, runs: Path, config: Path, *words: str, extra=()) -> str:
    line = expect_usage_error(capsys, ["sweep", str(config), *runs_dir_set(runs), *extra], *words)
    assert not runs.exists(), sorted(runs.rglob("*"))
    return line


# --- the study file ------------------------------------------------------------------------


def test_missing_config_file(capsys, tmp_path, runs):
    expect_sweep_error(capsys, runs, tmp_path / "nope.toml", "nope.toml", "does not exist")


def test_config_path_is_a_directory(capsys, tmp_path, runs):
    expect_sweep_error(capsys, runs, tmp_path, str(tmp_path), "is a directory", "--resume")


def test_invalid_toml(capsys, tmp_path, runs, tiny_dataset):
    config = write_config(tmp_path, tiny_dataset, BASE.replace("[study]", "[study", 1))
    expect_sweep_error(capsys, runs, config, "study.toml", "not valid TOML", "line 1")


CONFIG_CASES = {
    "unknown-section": (
        BASE + "\n[stduy]\nseed = 1\n",
        ["unknown section [stduy]", "did you mean [study]"],
    ),
    "unknown-study-key": (
        BASE.replace("seed = 0\n", "seeed = 0\n", 1),
        ["study.seeed", "did you mean 'seed'"],
    ),
    "unknown-trial-key": (
        BASE.replace("batch_size = 16", "bach_size = 16"),
        ["trial.bach_size", "did you mean 'batch_size'"],
    ),
    "unknown-model-key": (
        BASE.replace("embed_dim = 16", "embeddim = 16"),
        ["model.embeddim", "did you mean 'embed_dim'"],
    ),
    "string-for-int": (
        BASE.replace("trials_per_cell = 1", 'trials_per_cell = "2"'),
        ["study.trials_per_cell", "int", "'2'"],
    ),
    "float-for-int": (
        BASE.replace("max_epochs = 2", "max_epochs = 2.5"),
        ["scheduler.max_epochs", "int", "2.5"],
    ),
    "bool-for-float": (
        BASE.replace("cpus_per_trial = 1", "cpus_per_trial = true"),
        ["resources.cpus_per_trial", "float", "True"],
    ),
    "searched-field-in-trial": (
        BASE.replace("batch_size = 16", "batch_size = 16\nlr = 0.01"),
        ["trial.lr", "[search] lr"],
    ),
    "unknown-loss": (
        BASE + 'loss = ["clip", "infonce"]\n',
        ["search.loss", "'infonce'", "clip, sogclr"],
    ),
    "unknown-optimizer": (
        BASE + 'optimizer = "adam"\n',
        ["search.optimizer", "'adam'", "adamw, sgd_nesterov"],
    ),
    "unknown-search-parameter": (
        BASE + "temprature = 0.1\n",
        ["search.temprature", "did you mean 'temperature'"],
    ),
    "bad-search-range": (
        BASE + "lr = [0.1, 0.001]\n",
        ["search.lr", "above"],
    ),
    "old-trial-momentum": (
        BASE.replace("batch_size = 16", "batch_size = 16\nmomentum = 0.9"),
        ["trial.momentum", "[search] optimizer_momentum"],
    ),
    "optimizer-knob-out-of-range": (
        BASE.replace('space = "demo"', 'space = "seeds"')
        + 'cells = ["clip:lion"]\noptimizer_beta2 = 1.5\n',
        ["invalid trial", "optimizer 'lion': beta2 must be a number in [0, 1), got 1.5"],
    ),
    "unknown-metric": (
        BASE.replace('metric = "r_mean"', 'metric = "recall"'),
        ["study.metric", "'recall'"],
    ),
    "mode-against-metric": (
        BASE.replace('metric = "r_mean"', 'metric = "train_loss"'),
        ["study.mode 'max'", "study.metric 'train_loss'", "lower", "study.mode = 'min'"],
    ),
    "missing-data-table": (
        BASE.replace('[data]\ndir = "DATA_DIR"\n', ""),
        ["[data]", "dir"],
    ),
    "workers-do-not-divide-the-batch": (
        BASE.replace("max_concurrent = 1", "max_concurrent = 1\nworkers_per_trial = 3"),
        ["trial.batch_size 16", "divisible", "resources.workers_per_trial 3"],
    ),
    "a-fraction-of-a-gpu-per-worker": (
        BASE.replace("gpus_per_trial = 0", "gpus_per_trial = 1\nworkers_per_trial = 2"),
        ["resources.gpus_per_trial 1", "multiple of workers_per_trial"],
    ),
    "an-unknown-loss-form": (
        BASE.replace("batch_size = 16", 'batch_size = 16\nloss_form = "rows"'),
        ["trial.loss_form must be full or local", "'rows'"],
    ),
}


@pytest.mark.parametrize("case", CONFIG_CASES)
def test_bad_study_file(capsys, tmp_path, runs, tiny_dataset, case):
    text, words = CONFIG_CASES[case]
    expect_sweep_error(capsys, runs, write_config(tmp_path, tiny_dataset, text), *words)


@pytest.mark.parametrize(
    ("assignment", "words"),
    [
        ("trial.bach_size=8", ["trial.bach_size", "did you mean 'batch_size'"]),
        ("study.trials_per_cell=many", ["study.trials_per_cell", "int", "'many'"]),
        ('search.optimizer="lamb"', ["search.optimizer", "'lamb'"]),
        ("batch_size=8", ["--set", "section.key=value"]),
    ],
)
def test_bad_set_override(capsys, tmp_path, runs, tiny_dataset, assignment, words):
    config = write_config(tmp_path, tiny_dataset)
    expect_sweep_error(capsys, runs, config, *words, extra=["--set", assignment])


# --- the data ------------------------------------------------------------------------------


def test_missing_data_dir(capsys, tmp_path, runs):
    config = write_config(tmp_path, tmp_path / "no-such-data")
    expect_sweep_error(capsys, runs, config, "data directory", "no-such-data", "does not exist")


def test_train_json_not_json(capsys, tmp_path, runs, tiny_dataset):
    data = copy_dataset(tiny_dataset, tmp_path)
    (data / "train.json").write_text('[{"image": "images/train/000000.png", ')
    config = write_config(tmp_path, data)
    expect_sweep_error(capsys, runs, config, "train.json", "not valid JSON")


def test_train_row_without_caption(capsys, tmp_path, runs, tiny_dataset):
    data = copy_dataset(tiny_dataset, tmp_path)
    rows = json.loads((data / "train.json").read_text())
    del rows[3]["caption"]
    (data / "train.json").write_text(json.dumps(rows))
    config = write_config(tmp_path, data)
    expect_sweep_error(capsys, runs, config, "train.json", "row 3", "'caption'")


def test_zeroshot_classes_outnumber_folders(capsys, tmp_path, runs, tiny_dataset):
    data = copy_dataset(tiny_dataset, tmp_path)
    classes_json = data / "zeroshot" / "classes.json"
    spec = json.loads(classes_json.read_text())
    n_folders = len(spec["classes"])
    spec["classes"].append("a shape nobody drew")
    classes_json.write_text(json.dumps(spec))
    config = write_config(tmp_path, data)
    expect_sweep_error(
        capsys,
        runs,
        config,
        f"{n_folders} class folders",
        f"names {n_folders + 1} classes",
    )


# --- Ray and run directories ---------------------------------------------------------------


def test_unreachable_ray_address(capsys, tmp_path, runs, tiny_dataset):
    address = f"127.0.0.1:{free_port()}"
    config = write_config(tmp_path, tiny_dataset)
    expect_sweep_error(
        capsys, runs, config, "cannot reach a Ray cluster", address, extra=["--address", address]
    )


def test_resume_missing_run_dir(capsys, runs):
    expect_usage_error(
        capsys, ["sweep", str(runs / NAME), "--resume"], str(runs / NAME), "does not exist"
    )
    assert not runs.exists()


def test_resume_empty_dir(capsys, runs):
    run_dir = runs / NAME
    run_dir.mkdir(parents=True)
    expect_usage_error(
        capsys, ["sweep", str(run_dir), "--resume"], str(run_dir), "not a clipstudy run directory"
    )
    assert list(run_dir.iterdir()) == []


def test_resume_renamed_run_dir(capsys, tmp_path, runs, tiny_dataset):
    run_dir = runs / "renamed"
    run_dir.mkdir(parents=True)
    write_config(tmp_path, tiny_dataset).rename(run_dir / "study.toml")
    expect_usage_error(capsys, ["sweep", str(run_dir), "--resume"], f"'{NAME}'", "rename")
    assert [p.name for p in run_dir.iterdir()] == ["study.toml"]


def test_resume_finds_run_dir_from_any_working_directory(
    capsys, monkeypatch, tmp_path, runs, tiny_dataset
):
    """study.toml keeps runs_dir as written ("runs"); resuming from elsewhere still finds it."""
    run_dir = runs / NAME
    run_dir.mkdir(parents=True)
    write_config(tmp_path, tiny_dataset).rename(run_dir / "study.toml")  # runs_dir = "runs"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    seen = []

    def fake_run_sweep(cfg, *, resume, address):
        from study.errors import UsageError

        seen.append((cfg.run_dir, resume))
        raise UsageError("stop here")

    monkeypatch.setattr("study.runner.run_sweep", fake_run_sweep)
    expect_usage_error(capsys, ["sweep", str(run_dir), "--resume"], "stop here")
    assert seen == [(run_dir.resolve(), True)]
    assert not (elsewhere / "runs").exists()


def _hand_made_run_dir(tmp_path: Path, runs: Path, data_dir: Path) -> tuple[Path, str]:
    run_dir = runs / NAME
    run_dir.mkdir(parents=True)
    text = BASE.replace("DATA_DIR", str(data_dir)).replace(
        "seed = 0\n", f"seed = 0\nruns_dir = {json.dumps(str(runs))}\n", 1
    )
    (run_dir / "study.toml").write_text(text)
    return run_dir, text


def test_second_sweep_into_existing_run_dir(capsys, tmp_path, runs, tiny_dataset):
    run_dir, text = _hand_made_run_dir(tmp_path, runs, tiny_dataset)
    config = write_config(tmp_path, tiny_dataset)
    expect_usage_error(
        capsys,
        ["sweep", str(config), *runs_dir_set(runs)],
        "already exists",
        "--resume",
    )
    assert [p.name for p in run_dir.iterdir()] == ["study.toml"]
    assert (run_dir / "study.toml").read_text() == text


def test_resume_run_dir_without_ray_experiment(capsys, tmp_path, runs, tiny_dataset):
    run_dir, _ = _hand_made_run_dir(tmp_path, runs, tiny_dataset)
    expect_usage_error(
        capsys, ["sweep", str(run_dir), "--resume"], "no Ray experiment", "without --resume"
    )
    assert [p.name for p in run_dir.iterdir()] == ["study.toml"]


def test_dashboard_without_study_toml(capsys, tmp_path):
    expect_usage_error(capsys, ["dashboard", str(tmp_path)], str(tmp_path), "no study.toml")
    assert list(tmp_path.iterdir()) == []


def test_dashboard_without_optuna_db(capsys, tmp_path, runs, tiny_dataset):
    run_dir, _ = _hand_made_run_dir(tmp_path, runs, tiny_dataset)
    expect_usage_error(capsys, ["dashboard", str(run_dir)], "no optuna.db", "run the sweep")
    assert [p.name for p in run_dir.iterdir()] == ["study.toml"]


# --- the real console script ---------------------------------------------------------------


def test_console_script_bad_key(tmp_path, tiny_dataset):
    script = Path(sys.executable).parent / "clipstudy"
    assert script.is_file(), f"{script} missing: is the package installed into the venv?"
    runs = tmp_path / "runs"
    text = BASE.replace("batch_size = 16", "bach_size = 16")
    config = write_config(tmp_path, tiny_dataset, text)
    done = subprocess.run(
        [str(script), "sweep", str(config), *runs_dir_set(runs)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("clipstudy: error: unknown key trial.bach_size")
    assert "did you mean 'batch_size'" in lines[0]
    assert not runs.exists()
