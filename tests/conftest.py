"""Shared fixtures."""

from pathlib import Path

import pytest

from trainables.synth import write_synthetic_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset, written once per session (seed 0, 32 px): 96 train images,
    24 retrieval images with 5 captions each, 28 zero-shot classes x 2 images."""
    root = tmp_path_factory.mktemp("synth") / "data"
    write_synthetic_dataset(root, seed=0, n_train=96, n_retrieval=24, zeroshot_per_class=2)
    return root
