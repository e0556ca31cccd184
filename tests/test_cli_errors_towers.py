"""Bad tower files given to ``clipstudy sweep`` and ``confirm``: one line, exit 2, before Ray.

The study file of tests/cli_helpers.py with a ``[model]`` naming the tiny pretrained towers of
tests/tiny_pretrained.py, one fault at a time: a weights file that is missing or does not fit,
a text model that is not in the cache, a text directory without its tokenizer; and a
confirmation whose weights file was deleted after the sweep. The same files without the fault
reach ``ray.init`` (the control).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import (  # _no_ray: an autouse fixture, applied by importing it
    BASE,
    NAME,
    RayStarted,
    _no_ray,  # noqa: F401
    expect_usage_error,
)
from test_cli_errors_confirm_report import CELLS, COMPLETE, add_cell_studies, expect_confirm_error
from tiny_pretrained import TinyTowers, tiny_towers  # noqa: F401  (a session fixture)

from study.cli import main


def study_text(data_dir: Path, towers: TinyTowers, **model: str) -> str:
    values = {
        "image": "resnet18",
        "image_weights": str(towers.resnet18_file),
        "text": str(towers.text_dir),
    } | model
    lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    text = BASE.replace("DATA_DIR", str(data_dir))
    return text.replace("[model]\n", "[model]\n" + lines, 1)


def sweep(capsys, tmp_path: Path, text: str, *words: str) -> None:
    config, runs = tmp_path / "study.toml", tmp_path / "runs"
    config.write_text(text)
    argv = ["sweep", str(config), "--set", f"study.runs_dir={json.dumps(str(runs))}"]
    expect_usage_error(capsys, argv, *words)
    assert not runs.exists()


def test_sweep_with_a_missing_weights_file(capsys, tmp_path, tiny_dataset, tiny_towers):  # noqa: F811
    missing = tmp_path / "weights" / "resnet18.pth"
    text = study_text(tiny_dataset, tiny_towers, image_weights=str(missing))
    sweep(capsys, tmp_path, text, f"model.image_weights {missing} does not exist")


def test_sweep_with_weights_of_another_model(capsys, tmp_path, tiny_dataset, tiny_towers):  # noqa: F811
    text = study_text(tiny_dataset, tiny_towers, image="resnet34")
    sweep(capsys, tmp_path, text, str(tiny_towers.resnet18_file), "does not fit", "missing keys")


def test_sweep_with_a_text_model_not_in_the_cache(capsys, tmp_path, tiny_dataset, tiny_towers):  # noqa: F811
    text = study_text(tiny_dataset, tiny_towers, text="distilbert-base-uncased")
    sweep(capsys, tmp_path, text, "Hugging Face cache", "hf download distilbert-base-uncased")


def test_sweep_with_a_text_directory_without_tokenizer(
    capsys,
    tmp_path,
    tiny_dataset,
    tiny_towers,  # noqa: F811
):
    directory = tmp_path / "model-only"
    directory.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_towers.text_dir / name, directory / name)
    text = study_text(tiny_dataset, tiny_towers, text=str(directory))
    sweep(capsys, tmp_path, text, str(directory), "no tokenizer vocabulary")


def test_a_sweep_with_good_tower_files_reaches_ray(tmp_path, tiny_dataset, tiny_towers):  # noqa: F811
    config = tmp_path / "study.toml"
    config.write_text(study_text(tiny_dataset, tiny_towers))
    with pytest.raises(RayStarted):
        main(["sweep", str(config), "--set", f"study.runs_dir={json.dumps(str(tmp_path))}"])


def test_confirm_after_the_weights_file_was_deleted(capsys, tmp_path, tiny_dataset, tiny_towers):  # noqa: F811
    weights = tmp_path / "resnet18.pth"
    shutil.copy(tiny_towers.resnet18_file, weights)
    run_dir = tmp_path / "runs" / NAME
    run_dir.mkdir(parents=True)
    (run_dir / "study.toml").write_text(
        study_text(tiny_dataset, tiny_towers, image_weights=str(weights))
    )
    add_cell_studies(run_dir, {cell: [COMPLETE] for cell in CELLS})
    weights.unlink()
    expect_confirm_error(
        capsys, run_dir, ["--seeds", "2"], f"model.image_weights {weights} does not exist"
    )
