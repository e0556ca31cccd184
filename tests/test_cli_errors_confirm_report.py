"""Bad input to ``clipstudy confirm`` and ``clipstudy report``: one line, exit 2, nothing left.

Each case calls :func:`study.cli.main` in-process on a hand-made run directory
(``runs/cli-errors``: ``study.toml``, an ``optuna.db`` with one study per cell, the sweep's
``trials.parquet`` and, for ``report``, a ``confirm.parquet``), with ``ray.init`` replaced by a
function that fails the test. Proven here:

* ``confirm`` rejects a directory that is not a run directory, ``--seeds`` below 1, a run
  without an Optuna study, a ``--cells`` entry that is not a cell of the study, a sweep with
  no COMPLETE trial in any chosen cell (the cells are named), ``--resume`` with nothing or
  other seeds to resume, and a data directory deleted after the sweep, all before Ray starts,
  and leaves no ``confirm.parquet``, ``confirm_plan.json`` or ``ray/confirm`` behind; the run
  directory's files are unchanged (no ``optuna.db`` appears where there was none). The same
  run directory without the fault reaches
  ``ray.init``, so each fault, not the fixture, is what stops the command.
* ``report`` rejects a directory that is not a run directory, a run without
  ``confirm.parquet``, a confirmation table with one cell or one seed, and a ``--baseline``
  that is not a confirmed cell; no ``report.html``/``report.json`` is written, no file of the
  run directory changes, and no overview study is added to ``optuna.db``. The same run
  directory without the fault does get its report (the control).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from cli_helpers import (  # _no_ray: an autouse fixture, applied by importing it
    BASE,
    NAME,
    RayStarted,
    _no_ray,  # noqa: F401
    expect_usage_error,
)
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from study.cli import main
from study.config import load_config
from study.storage import default_storage_url
from study.studies import cell_study_name

CELLS = ["clip:adamw", "clip:sgd_nesterov", "sogclr:adamw", "sogclr:sgd_nesterov"]

COMPLETE, PRUNED, FAIL = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL


@pytest.fixture(autouse=True)
def _quiet_optuna():
    """No "A new study created" lines from building the fixtures."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


# --- building a run directory --------------------------------------------------------------


def make_run_dir(tmp_path: Path, data_dir: Path) -> Path:
    run_dir = tmp_path / "runs" / NAME
    run_dir.mkdir(parents=True)
    (run_dir / "study.toml").write_text(BASE.replace("DATA_DIR", str(data_dir)))
    assert load_config(run_dir / "study.toml").cells == CELLS
    return run_dir


def add_cell_studies(run_dir: Path, states: dict[str, list[TrialState]]) -> None:
    """One study per cell in ``states`` in ``optuna.db``, with a trial per listed state."""
    for cell, cell_states in states.items():
        study = optuna.create_study(
            study_name=cell_study_name(NAME, cell),
            storage=default_storage_url(run_dir),
            direction="maximize",
        )
        for i, state in enumerate(cell_states):
            study.add_trial(
                create_trial(
                    state=state,
                    value=50.0 + i if state == COMPLETE else None,
                    params={"cell": cell, "lr": 1e-3 * (i + 1)},
                    distributions={
                        "cell": CategoricalDistribution([cell]),
                        "lr": FloatDistribution(1e-5, 1.0, log=True),
                    },
                    intermediate_values={} if state == FAIL else {1: 40.0 + i},
                )
            )


def study_names(run_dir: Path) -> list[str]:
    return sorted(optuna.get_all_study_names(default_storage_url(run_dir)))


def write_trials(run_dir: Path, cells: list[str] = CELLS) -> None:
    """The sweep's trials.parquet: one COMPLETE 2-epoch trial per cell."""
    rows = [
        {
            "trial_id": f"t{n}",
            "cell": cell,
            "number": 0,
            "state": "COMPLETE",
            "epoch": epoch,
            "r_mean": 40.0 + n + epoch,
            "loss": cell.split(":")[0],
            "optimizer": cell.split(":")[1],
            "lr": 1e-3,
        }
        for n, cell in enumerate(cells)
        for epoch in (1, 2)
    ]
    pd.DataFrame(rows).to_parquet(run_dir / "trials.parquet", index=False)


def write_confirm(run_dir: Path, cells: list[str], seeds: int) -> None:
    """confirm.parquet, every cell x seed reaching the final epoch (2), and the matching
    confirm_plan.json (the other cells missing)."""
    plan = {
        "configs": {cell: {"lr": 1e-3} for cell in cells},
        "missing": [cell for cell in CELLS if cell not in cells],
        "seeds": seeds,
        "failed": [],
    }
    (run_dir / "confirm_plan.json").write_text(json.dumps(plan))
    rows = [
        {
            "cell": cell,
            "loss": cell.split(":")[0],
            "optimizer": cell.split(":")[1],
            "seed": seed,
            "epoch": epoch,
            "r_mean": 40.0 + 3 * n + seed + 5 * epoch,
            "zs_top1": 20.0 + n + seed + epoch,
            "txt_r1": 10.0 + n + seed + epoch,
        }
        for n, cell in enumerate(cells)
        for seed in range(seeds)
        for epoch in (1, 2)
    ]
    pd.DataFrame(rows).to_parquet(run_dir / "confirm.parquet", index=False)


def snapshot(run_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(run_dir)): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def swept(tmp_path: Path, tiny_dataset: Path) -> Path:
    """A finished sweep: every cell has one COMPLETE trial."""
    run_dir = make_run_dir(tmp_path, tiny_dataset)
    add_cell_studies(run_dir, {cell: [PRUNED, COMPLETE] for cell in CELLS})
    write_trials(run_dir)
    return run_dir


# --- confirm -------------------------------------------------------------------------------


def expect_confirm_error(capsys, run_dir: Path, extra: list[str], *words: str) -> str:
    """The error, with the run directory's files unchanged and no confirmation output."""
    before = snapshot(run_dir)
    line = expect_usage_error(capsys, ["confirm", str(run_dir), *extra], *words)
    assert snapshot(run_dir) == before
    assert not (run_dir / "ray").exists()
    return line


@pytest.mark.parametrize("command", [["confirm", "--seeds", "2"], ["report"]])
@pytest.mark.parametrize("where", ["empty", "absent"])
def test_not_a_run_dir(capsys, tmp_path, command, where):
    path = tmp_path / "elsewhere"
    if where == "empty":
        path.mkdir()
    argv = [command[0], str(path), *command[1:]]
    words = (
        ("not a clipstudy run directory", "no study.toml")
        if where == "empty"
        else ("does not exist",)
    )
    expect_usage_error(capsys, argv, str(path), *words)
    assert list(tmp_path.iterdir()) == ([path] if where == "empty" else [])
    assert not path.exists() or list(path.iterdir()) == []


@pytest.mark.parametrize("command", [["confirm", "--seeds", "2"], ["report"]])
def test_renamed_run_dir(capsys, swept, command):
    renamed = swept.rename(swept.with_name("renamed"))
    before = snapshot(renamed)
    expect_usage_error(capsys, [command[0], str(renamed), *command[1:]], f"'{NAME}'", "rename")
    assert snapshot(renamed) == before


@pytest.mark.parametrize("seeds", ["0", "-3"])
def test_confirm_seeds_below_one(capsys, swept, seeds):
    expect_confirm_error(capsys, swept, ["--seeds", seeds], "--seeds must be >= 1", seeds)


def test_confirm_without_optuna_study(capsys, tmp_path, tiny_dataset):
    run_dir = make_run_dir(tmp_path, tiny_dataset)
    expect_confirm_error(
        capsys, run_dir, ["--seeds", "2"], str(run_dir), "no optuna.db", "run the sweep first"
    )


def test_confirm_unknown_cell(capsys, swept):
    expect_confirm_error(
        capsys,
        swept,
        ["--seeds", "2", "--cells", "clip:adamw, siglip:lion"],
        "--cells",
        "'siglip:lion' is not a cell of this study",
        ", ".join(CELLS),
    )


@pytest.mark.parametrize(
    ("states", "cells", "missing"),
    [
        (  # sogclr:sgd_nesterov has no study at all
            {"clip:adamw": [PRUNED], "clip:sgd_nesterov": [FAIL], "sogclr:adamw": [PRUNED]},
            [],
            CELLS,
        ),
        (
            {"clip:adamw": [PRUNED, FAIL], "sogclr:adamw": [COMPLETE]},
            ["--cells", "clip:adamw,clip:sgd_nesterov"],
            ["clip:adamw", "clip:sgd_nesterov"],
        ),
    ],
    ids=["all-cells", "chosen-cells"],
)
def test_confirm_without_complete_trial(capsys, tmp_path, tiny_dataset, states, cells, missing):
    run_dir = make_run_dir(tmp_path, tiny_dataset)
    add_cell_studies(run_dir, states)
    expect_confirm_error(
        capsys,
        run_dir,
        ["--seeds", "2", *cells],
        "no cell of",
        "COMPLETE (full-budget) trial",
        f"(missing: {', '.join(missing)})",
        "run a longer sweep",
    )


def test_confirm_resume_without_confirmation(capsys, swept):
    expect_confirm_error(
        capsys,
        swept,
        ["--seeds", "2", "--resume"],
        "has no confirmation to resume",
        "leave out --resume",
    )


def test_confirm_resume_with_other_seeds(capsys, swept):
    (swept / "confirm_plan.json").write_text(json.dumps({"seeds": 3, "configs": {}}))
    expect_confirm_error(
        capsys, swept, ["--seeds", "5", "--resume"], "started with --seeds 3, not 5", "--seeds 3"
    )


def test_confirm_data_deleted_after_sweep(capsys, tmp_path, tiny_dataset):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    run_dir = make_run_dir(tmp_path, data)
    add_cell_studies(run_dir, {cell: [COMPLETE] for cell in CELLS})
    shutil.rmtree(data)
    expect_confirm_error(
        capsys, run_dir, ["--seeds", "2"], "data directory", str(data), "does not exist"
    )


def test_confirm_of_a_good_run_dir_reaches_ray(capsys, swept):
    """The control: without a fault, confirm gets as far as ``ray.init`` (and writes nothing)."""
    before = snapshot(swept)
    with pytest.raises(RayStarted):
        main(["confirm", str(swept), "--seeds", "2", "--cells", "clip:adamw"])
    assert snapshot(swept) == before
    assert not (swept / "ray").exists()


# --- report --------------------------------------------------------------------------------


@pytest.fixture
def confirmed(swept: Path) -> Path:
    """A finished confirmation of every cell with seeds 0..2."""
    write_confirm(swept, CELLS, seeds=3)
    return swept


def expect_report_error(capsys, run_dir: Path, extra: list[str], *words: str) -> str:
    """The error, with no report written, the run directory's files unchanged and no overview
    study in optuna.db."""
    before, studies = snapshot(run_dir), study_names(run_dir)
    line = expect_usage_error(capsys, ["report", str(run_dir), *extra], *words)
    assert snapshot(run_dir) == before
    assert study_names(run_dir) == studies
    assert NAME not in studies
    return line


def test_report_without_confirmation(capsys, swept):
    expect_report_error(
        capsys, swept, [], str(swept), "no confirm.parquet", "run `clipstudy confirm` first"
    )


@pytest.mark.parametrize(
    ("cells", "seeds"), [(["clip:adamw"], 3), (CELLS, 1)], ids=["one-cell", "one-seed"]
)
def test_report_needs_two_cells_and_two_seeds(capsys, confirmed, cells, seeds):
    write_confirm(confirmed, cells, seeds)
    expect_report_error(
        capsys,
        confirmed,
        [],
        "at least 2 cells over at least 2 seeds",
        "clipstudy confirm --seeds K",
        "K >= 2",
    )


@pytest.mark.parametrize("baseline", ["siglip:lion", "clip"])
def test_report_baseline_not_confirmed(capsys, confirmed, baseline):
    write_confirm(confirmed, ["clip:adamw", "sogclr:adamw"], seeds=3)
    expect_report_error(
        capsys,
        confirmed,
        ["--baseline", baseline],
        f"--baseline {baseline!r}",
        "is not among the cells compared (clip:adamw, sogclr:adamw)",
    )


def test_report_of_a_good_run_dir_succeeds(capsys, confirmed):
    """The control: without a fault, the same run directory gets its report."""
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(confirmed), "--baseline", "clip:adamw"])
    assert exit_info.value.code == 0, capsys.readouterr()
    assert (confirmed / "report.html").is_file() and (confirmed / "report.json").is_file()
    assert NAME in study_names(confirmed)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["confirm", "runs/x", "--seeds", "x"], ["--seeds", "invalid int value: 'x'"]),
        (["confirm", "runs/x"], ["required", "--seeds"]),
        (["reprot", "runs/x"], ["invalid choice: 'reprot'", "clipstudy --help"]),
    ],
)
def test_bad_arguments_are_one_line_too(capsys, argv, words):
    expect_usage_error(capsys, argv, *words)
