"""Bad train formats and unreadable images through ``clipstudy sweep``: one line, exit 2,
before Ray starts and before the run directory exists (see tests/test_cli_errors.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import BASE, _no_ray, expect_usage_error  # noqa: F401

from trainables.synth import write_synthetic_dataset


@pytest.fixture(scope="module")
def formats_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-formats") / "data"
    write_synthetic_dataset(
        root, n_train=32, n_retrieval=8, zeroshot_per_class=1, formats=("csv", "webdataset")
    )
    return root


def sweep_error(capsys, tmp_path: Path, data: Path, data_lines: str, *words: str) -> None:
    config = tmp_path / "study.toml"
    text = BASE.replace('dir = "DATA_DIR"', f'dir = "{data}"\n{data_lines}')
    config.write_text(text)
    runs = tmp_path / "runs"
    argv = ["sweep", str(config), "--set", f"study.runs_dir={json.dumps(str(runs))}"]
    expect_usage_error(capsys, argv, *words)
    assert not runs.exists()


def test_webdataset_without_shards(capsys, tmp_path, formats_dataset):
    sweep_error(
        capsys, tmp_path, formats_dataset, 'train_format = "webdataset"', "needs data.train_shards"
    )


def test_missing_shards(capsys, tmp_path, formats_dataset):
    lines = 'train_format = "webdataset"\ntrain_shards = "shards/{00000..00003}.tar"'
    sweep_error(capsys, tmp_path, formats_dataset, lines, "3 of 4 shards are missing", "00001.tar")


def test_unknown_train_format(capsys, tmp_path, formats_dataset):
    sweep_error(capsys, tmp_path, formats_dataset, 'train_format = "tfrecord"', "data.train_format")


def test_csv_column_that_is_not_there(capsys, tmp_path, formats_dataset):
    lines = 'train_format = "csv"\ncsv_caption_key = "caption"'
    sweep_error(capsys, tmp_path, formats_dataset, lines, "no column 'caption'", "csv_caption_key")


def test_csv_with_a_wrong_image_root(capsys, tmp_path, formats_dataset):
    lines = 'train_format = "csv"\ntrain_images = "elsewhere"'
    sweep_error(
        capsys, tmp_path, formats_dataset, lines, "none of the 4 sampled train images exists"
    )


def test_an_unreadable_retrieval_image_stops_the_sweep(capsys, tmp_path, formats_dataset):
    data = tmp_path / "data"
    shutil.copytree(formats_dataset, data)
    bad = data / "images" / "retrieval" / "000006.png"  # not among the images the check samples
    bad.write_bytes(b"\x89PNG broken")
    sweep_error(capsys, tmp_path, data, "", f"evaluation image {bad}: unreadable")
