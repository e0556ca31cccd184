"""``clipstudy data cache DIR [--clear]``: lists the image caches of a data directory and
removes them, leaving the data alone; a cache directory holding anything else is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import _no_ray, expect_usage_error  # noqa: F401

from study.cli import CACHE_DIR, main
from trainables.config import DataPaths
from trainables.image_cache import prepare_image_cache
from trainables.synth import write_synthetic_dataset


@pytest.fixture
def cached_data(tmp_path: Path) -> Path:
    """A tiny dataset with its image cache at two image sizes."""
    data = tmp_path / "data"
    write_synthetic_dataset(data, n_train=8, n_retrieval=4, zeroshot_per_class=1)
    for size in (16, 32):
        prepare_image_cache(DataPaths(str(data)), size)
    return data


def clipstudy(capsys, *argv: str) -> str:
    """stdout of ``clipstudy argv``, which must exit with status 0."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_the_cache_is_listed_then_cleared_and_the_data_kept(capsys, cached_data):
    cache = cached_data / CACHE_DIR
    out = clipstudy(capsys, "data", "cache", str(cached_data))
    assert f"{cache} holds 2 image cache(s)" in out
    assert all(f"{d.name} " in out for d in cache.iterdir())
    out = clipstudy(capsys, "data", "cache", str(cached_data), "--clear")
    assert f"{cache} removed 2 image cache(s)" in out
    assert not cache.exists()
    assert (cached_data / "train.json").is_file() and (cached_data / "zeroshot").is_dir()
    out = clipstudy(capsys, "data", "cache", str(cached_data), "--clear")
    assert f"{cache} removed 0 image cache(s), 0.0 MB" in out


def test_a_cache_dir_elsewhere_is_found_with_cache_dir(capsys, cached_data, tmp_path):
    elsewhere = tmp_path / "scratch" / "cache"
    prepare_image_cache(DataPaths(str(cached_data), cache_dir=str(elsewhere)), 16)
    out = clipstudy(capsys, "data", "cache", str(cached_data), "--cache-dir", str(elsewhere))
    assert f"{elsewhere} holds 1 image cache(s)" in out


def test_a_directory_with_other_files_is_not_removed(capsys, cached_data):
    stray = cached_data / CACHE_DIR / "notes.txt"
    stray.write_text("mine")
    argv = ["data", "cache", str(cached_data), "--clear"]
    expect_usage_error(capsys, argv, "'notes.txt'", "not an image cache directory")
    assert stray.is_file() and len(list(stray.parent.iterdir())) == 3
    argv = ["data", "cache", str(cached_data), "--cache-dir", "train.json", "--clear"]
    expect_usage_error(capsys, argv, "train.json is a file")
    assert (cached_data / "train.json").is_file()


def test_the_default_cache_dir_is_the_configs():
    assert DataPaths("x").cache_dir == CACHE_DIR
