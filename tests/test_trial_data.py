"""A trial's data, loaded once per process: trials that read the same image cache with the same
tokenizer share it, the driver's cache directory spares them the data files, changed data is
read afresh, and a trial on reused data trains exactly as on freshly loaded data."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from test_trial import run, tiny_config, without_timings

from study.config import load_config, to_toml
from study.errors import UsageError
from trainables.image_cache import prepare_image_cache
from trainables.trial_data import _load, load_trial_data

DEMO_TOML = Path(__file__).parents[1] / "configs" / "demo.toml"


@pytest.fixture
def fresh():
    """No data left over from an earlier test in this process."""
    _load.cache_clear()
    yield
    _load.cache_clear()


def test_trials_of_one_process_share_their_data(tiny_dataset: Path, fresh):
    first = load_trial_data(tiny_config(tiny_dataset, loss="clip", lr=1e-3))
    other = {"loss": "sogclr", "optimizer": "sgd_nesterov", "lr": 0.1, "seed": 3}
    other_params = tiny_config(tiny_dataset, **other)
    assert load_trial_data(other_params) is first
    # another tokenizer (max_length) is another dataset
    assert load_trial_data(tiny_config(tiny_dataset, max_length=16)) is not first


def test_the_drivers_cache_directory_spares_the_data_files(tiny_dataset: Path, tmp_path, fresh):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    directory, _ = prepare_image_cache(tiny_config(data).data, 32)
    reference = load_trial_data(tiny_config(data))
    _load.cache_clear()
    shutil.rmtree(data / "images")  # a trial that read the data files would fail now
    (data / "train.json").unlink()
    cfg = tiny_config(data, image_cache=str(directory))
    loaded = load_trial_data(cfg)
    assert loaded.retrieval_texts == reference.retrieval_texts
    assert loaded.train.records == reference.train.records
    # a driver's directory that is not on this machine: the trial finds the cache itself
    gone = tiny_config(tiny_dataset, image_cache=str(tmp_path / "elsewhere"))
    assert len(load_trial_data(gone).train) == len(reference.train)


def test_changed_data_is_read_afresh(tiny_dataset: Path, tmp_path, fresh):
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    before = load_trial_data(tiny_config(data))
    annotations = data / "train.json"
    records = json.loads(annotations.read_text())
    records[0]["caption"] = "a zebra crossing"
    annotations.write_text(json.dumps(records))
    after = load_trial_data(tiny_config(data))
    assert after is not before
    assert after.train.records[0].caption == "a zebra crossing"


def test_a_trial_on_reused_data_reports_the_same_metrics(tiny_dataset: Path, fresh):
    cfg = tiny_config(tiny_dataset, epochs=1)
    loaded = run(cfg)
    reused = run(dataclasses.replace(cfg))
    assert _load.cache_info().hits >= 1
    assert [without_timings(m) for m in reused] == [without_timings(m) for m in loaded]


def test_the_image_cache_is_the_harness_s_not_the_study_file_s(tiny_dataset: Path, tmp_path):
    overrides = [f'data.dir="{tiny_dataset}"']
    cfg = load_config(DEMO_TOML, overrides, name="cache")
    assert cfg.trial.image_cache == ""
    with_cache = dataclasses.replace(cfg, trial=dataclasses.replace(cfg.trial, image_cache="/x"))
    assert "image_cache" not in to_toml(with_cache)
    with pytest.raises(UsageError, match=r"unknown key trial\.image_cache"):
        load_config(DEMO_TOML, [*overrides, 'trial.image_cache="/x"'])
