"""End-to-end sweeps through real Ray Tune, real ASHA and a real Optuna SQLite study.

What is proven: Optuna tells the truth (COMPLETE = full budget, PRUNED = stopped by ASHA with
every epoch as an intermediate value, FAIL with its reason), the user attributes are set, the
tidy table matches the study, and an interrupted sweep resumes without losing, duplicating or
leaving RUNNING any trial.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from study.cli import run
from study.confirm import plan_confirmation
from study.studies import load_cell_studies

MAX_EPOCHS = 3

STUDY_TOML = """
[study]
name = "{name}"
space = "demo"
metric = "r_mean"
mode = "max"
trials_per_cell = {trials_per_cell}
seed = 0
runs_dir = "{runs}"

[scheduler]
max_epochs = {max_epochs}
grace_period = 1
reduction_factor = 2

[resources]
cpus_per_trial = 1
max_concurrent = 1

[data]
dir = "{data}"

[model]
embed_dim = 16
image_width = 8
text_width = 16
text_layers = 1
text_heads = 1

[trial]
batch_size = 16
max_bad_image_fraction = {max_bad}

[sampler]  # the draws of these tests (before issue 13, TPE drew exactly these at <= 10 trials)
kind = "random"

[search]
lr = [1e-3, 1e-2]
optimizer = "adamw"
"""


def write_config(tmp_path: Path, data: Path, *, name: str, trials_per_cell: int, max_bad=0.01):
    path = tmp_path / f"{name}.toml"
    path.write_text(
        STUDY_TOML.format(
            name=name,
            trials_per_cell=trials_per_cell,
            runs=tmp_path / "runs",
            data=data,
            max_epochs=MAX_EPOCHS,
            max_bad=max_bad,
        )
    )
    return path


CELLS = ["clip:adamw", "sogclr:adamw"]  # the demo space with optimizer = "adamw"


def load_studies(run_dir: Path) -> dict[str, optuna.Study]:
    """Cell -> Optuna study of the run (opened without creating tables)."""
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{run_dir / 'optuna.db'}", skip_table_creation=True
    )
    return load_cell_studies(storage, run_dir.name)


def trials_of(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    return [t for study in load_studies(run_dir).values() for t in study.trials]


def assert_truthful(trials: list[optuna.trial.FrozenTrial]) -> None:
    """Every trial's state follows from its epochs; intermediate values cover every epoch."""
    for trial in trials:
        attrs = trial.user_attrs
        assert {"loss", "optimizer", "epochs_completed", "ray_trial_id"} <= set(attrs)
        epochs = attrs["epochs_completed"]
        assert sorted(trial.intermediate_values) == list(range(1, epochs + 1))
        if trial.state == TrialState.COMPLETE:
            assert epochs == MAX_EPOCHS
            assert trial.value == trial.intermediate_values[MAX_EPOCHS]
        else:
            assert trial.state == TrialState.PRUNED
            assert 1 <= epochs < MAX_EPOCHS
            assert trial.value == trial.intermediate_values[epochs]


def assert_resumed_without_loss_or_duplicates(run_dir: Path, per_cell: int = 2) -> list[str]:
    """A resumed sweep of CELLS x ``per_cell`` trials: every trial once (one Ray id, one row
    per epoch in the trials table), finished and truthful. Returns the Ray trial ids."""
    trials = trials_of(run_dir)
    ray_ids = [t.user_attrs.get("ray_trial_id") for t in trials]
    assert len(set(ray_ids)) == len(ray_ids) == len(CELLS) * per_cell
    assert all(t.state.is_finished() for t in trials)
    assert_truthful(trials)
    studies = load_studies(run_dir)
    assert {cell: len(s.trials) for cell, s in studies.items()} == dict.fromkeys(CELLS, per_cell)
    table = pd.read_parquet(run_dir / "trials.parquet")
    assert table["trial_id"].nunique() == len(CELLS) * per_cell
    assert not table.duplicated(["trial_id", "epoch"]).any()
    return ray_ids


@pytest.fixture(scope="module")
def swept(tiny_dataset, tmp_path_factory):
    """One sweep of 2 cells x 3 trials, run once for the tests below."""
    tmp = tmp_path_factory.mktemp("sweep")
    config = write_config(tmp, tiny_dataset, name="e2e", trials_per_cell=3)
    code = run(["sweep", str(config)])
    return code, tmp / "runs" / "e2e", config


def test_sweep_records_truthful_states(swept):
    code, run_dir, _ = swept
    assert code == 0
    trials = trials_of(run_dir)
    assert len(trials) == 6
    assert_truthful(trials)
    states = {t.state for t in trials}
    assert TrialState.COMPLETE in states and TrialState.PRUNED in states
    assert {t.user_attrs["optimizer"] for t in trials} == {"adamw"}


def test_every_cell_has_its_own_study_with_an_equal_budget_and_a_full_budget_trial(swept):
    _, run_dir, _ = swept
    studies = load_studies(run_dir)
    assert list(studies) == CELLS
    for cell, study in studies.items():
        assert study.study_name == f"e2e/{cell.replace(':', '/')}"
        assert study.direction == optuna.study.StudyDirection.MAXIMIZE
        assert len(study.trials) == 3
        assert {t.params["cell"] for t in study.trials} == {cell}
        assert {t.user_attrs["loss"] for t in study.trials} == {cell.split(":")[0]}
        assert any(t.state == TrialState.COMPLETE for t in study.trials)
    from optuna_dashboard import get_note

    overview = optuna.load_study(study_name="e2e", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert overview.trials == []
    note = get_note(overview)
    assert note.startswith("## Sweep e2e") and "3 trials" in note
    assert all(f"`{study.study_name}`" in note for study in studies.values())


def test_trials_table_matches_study(swept):
    _, run_dir, _ = swept
    table = pd.read_parquet(run_dir / "trials.parquet")
    trials = trials_of(run_dir)
    assert len(table) == sum(t.user_attrs["epochs_completed"] for t in trials)
    assert not table.duplicated(["trial_id", "epoch"]).any()
    for trial in trials:
        rows = table[table["trial_id"] == trial.user_attrs["ray_trial_id"]]
        assert set(rows["cell"]) == {trial.params["cell"]}
        assert set(rows["number"]) == {trial.number}
        assert set(rows["state"]) == {trial.state.name}
        assert rows["r_mean"].tolist() == [trial.intermediate_values[e] for e in rows["epoch"]]
        assert rows["lr"].iloc[0] == trial.params["lr"]


def test_second_sweep_with_same_name_is_refused(swept, capsys):
    _, run_dir, config = swept
    with pytest.raises(SystemExit) as exit_info:
        from study.cli import main

        main(["sweep", str(config)])
    assert exit_info.value.code == 2
    assert "already exists" in capsys.readouterr().err
    assert len(trials_of(run_dir)) == 6


def test_failing_trials_are_told_fail_with_reason(tiny_dataset, tmp_path):
    data = tmp_path / "broken"
    shutil.copytree(tiny_dataset, data)
    for image in (data / "images" / "train").iterdir():
        image.write_bytes(b"not a png")
    config = write_config(tmp_path, data, name="broken", trials_per_cell=1)
    assert run(["sweep", str(config)]) == 0
    trials = trials_of(tmp_path / "runs" / "broken")
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL]
    for trial in trials:
        assert "unreadable" in trial.user_attrs["fail_reason"]
        assert "max_bad_image_fraction" in trial.user_attrs["fail_reason"]


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def _interrupt(argv: list[str], ready, log: Path) -> None:
    """Run the ``clipstudy`` console script, send SIGINT once ``ready()``; it must exit 130.
    Its output goes to ``log``, whose tail a failure shows."""
    clipstudy = Path(sys.executable).with_name("clipstudy")
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(clipstudy), *argv],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        assert _wait_for(ready, timeout_s=240), f"not ready after 240 s:\n{_tail(log)}"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 130, _tail(log)
    finally:
        process.kill()


def _tail(log: Path, lines: int = 30) -> str:
    return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-lines:])


FINISHED_STATES = ("COMPLETE", "PRUNED", "FAIL")  # as Optuna's trials table spells them


def _finished_trials(run_dir: Path) -> int:
    """Finished trials of the run's studies, polled while the sweep process may still be
    creating the database: one query on a read-only connection, closed at once ("not there
    yet" counts as 0). Not an ``RDBStorage``: opening one writes its version rows into a
    database that has none yet, and raises StorageInternalError on a half-created one."""
    path = run_dir / "optuna.db"
    if not path.exists():
        return 0
    query = f"SELECT count(*) FROM trials WHERE state IN {FINISHED_STATES}"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute(query).fetchone()[0]
    except sqlite3.Error:
        return 0


def test_interrupted_sweep_resumes_without_loss_or_duplicates(tiny_dataset, tmp_path):
    config = write_config(tmp_path, tiny_dataset, name="resumable", trials_per_cell=2)
    run_dir = tmp_path / "runs" / "resumable"
    _interrupt(
        ["sweep", str(config)],
        ready=lambda: _finished_trials(run_dir) >= 1,
        log=tmp_path / "sweep.log",
    )
    assert _finished_trials(run_dir) < 4

    assert run(["sweep", str(run_dir), "--resume"]) == 0
    assert_resumed_without_loss_or_duplicates(run_dir)


def test_confirm_retrains_each_cell_with_common_seeds(swept, capsys):
    _, run_dir, _ = swept
    assert run(["confirm", str(run_dir), "--seeds", "2"]) == 0
    table = pd.read_parquet(run_dir / "confirm.parquet")
    plan = plan_confirmation(load_studies(run_dir), CELLS)
    assert plan.missing == []  # one study and one ASHA per cell: each has a full-budget trial
    assert set(table["cell"]) == set(CELLS)
    for _, runs in table.groupby("cell"):
        assert sorted(runs["seed"].unique()) == [0, 1]
        assert runs.groupby("seed")["epoch"].apply(list).tolist() == [[1, 2, 3], [1, 2, 3]]
    recorded = json.loads((run_dir / "confirm_plan.json").read_text())
    assert recorded == {"configs": plan.best, "missing": [], "seeds": 2, "failed": []}
    out = capsys.readouterr().out
    assert all(f"{cell}" in out for cell in CELLS)


def _confirm_error(argv: list[str], capsys) -> str:
    from study.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _copy_run(run_dir: Path, tmp_path: Path) -> Path:
    """The swept run directory without its confirmation (same name, another parent)."""
    copy = tmp_path / "runs" / run_dir.name
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("confirm*", "report*"))
    return copy


def _confirm_results(run_dir: Path) -> int:
    """Epoch results the confirmation trials have written so far."""
    files = (run_dir / "ray" / "confirm").rglob("result.json")
    return sum(len(f.read_text().splitlines()) for f in files)


def test_interrupted_confirmation_writes_nothing_and_resumes(swept, tmp_path, capsys):
    run_dir = _copy_run(swept[1], tmp_path)
    _interrupt(
        ["confirm", str(run_dir), "--seeds", "2"],
        ready=lambda: _confirm_results(run_dir) >= 1,
        log=tmp_path / "confirm.log",
    )
    assert not (run_dir / "confirm.parquet").exists()
    assert "--resume" in _confirm_error(["confirm", str(run_dir), "--seeds", "2"], capsys)
    err = _confirm_error(["confirm", str(run_dir), "--seeds", "3", "--resume"], capsys)
    assert "started with --seeds 2" in err
    err = _confirm_error(
        ["confirm", str(run_dir), "--seeds", "2", "--resume", "--cells", CELLS[0]], capsys
    )
    assert "leave out --cells" in err

    assert run(["confirm", str(run_dir), "--seeds", "2", "--resume"]) == 0
    table = pd.read_parquet(run_dir / "confirm.parquet")
    assert not table.duplicated(["cell", "seed", "epoch"]).any()
    assert len(table) == len(CELLS) * 2 * MAX_EPOCHS


def test_sweep_confirm_report_end_to_end(tiny_dataset, tmp_path):
    """Two cells that both reach the full budget (no early stopping), two seeds, a report."""
    from optuna_dashboard import get_note

    config = write_config(tmp_path, tiny_dataset, name="reported", trials_per_cell=2)
    text = config.read_text().replace(f"max_epochs = {MAX_EPOCHS}", "max_epochs = 1")
    config.write_text(text.replace('optimizer = "adamw"', f"cells = {json.dumps(CELLS)}"))
    run_dir = tmp_path / "runs" / "reported"
    assert run(["sweep", str(config)]) == 0
    assert run(["confirm", str(run_dir), "--seeds", "2"]) == 0
    assert run(["report", str(run_dir)]) == 0
    page = (run_dir / "report.html").read_text()
    data = json.loads((run_dir / "report.json").read_text())
    assert data["primary"]["methods"] == ["clip:adamw", "sogclr:adamw"]
    assert data["primary"]["n_tests"] == 1
    assert data["verdict"][0] in page
    storage = f"sqlite:///{run_dir / 'optuna.db'}"
    overview = optuna.load_study(study_name=run_dir.name, storage=storage)
    assert data["verdict"][0] in get_note(overview)
    assert get_note(overview).startswith("## Verdict (confirmation runs)")
    for cell, study in load_studies(run_dir).items():
        mean = data["means"][cell]
        assert f"{cell}: its best COMPLETE trial, retrained over 2 seeds" in get_note(study)
        assert f"has mean r_mean {mean:.2f}" in get_note(study)
    assert "cells not confirmed (no full-budget trial in the sweep)</b>: none" in page
    assert "cells left out (a confirmation run failed or did not finish)</b>: none" in page
