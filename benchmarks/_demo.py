"""Shared set-up of the benchmarks: the demo study file and a freshly synthesised dataset."""

from __future__ import annotations

import tomllib
from pathlib import Path

from trainables.config import DataPaths, TrialConfig
from trainables.model_config import ModelConfig
from trainables.synth import write_synthetic_dataset

DEMO_TOML = Path(__file__).resolve().parent.parent / "configs" / "demo.toml"


def demo_tables() -> dict:
    return tomllib.loads(DEMO_TOML.read_text())


def demo_trial_config(data_dir: Path, params: dict, *, epochs: int | None = None) -> TrialConfig:
    """The demo study's trial settings on ``data_dir`` with searched ``params`` applied."""
    tables = demo_tables()
    return TrialConfig(
        data=DataPaths(str(data_dir)),
        model=ModelConfig(**tables.get("model", {})),
        epochs=epochs or tables["scheduler"]["max_epochs"],
        **tables.get("trial", {}),
    ).with_params(params)


def synthesise(directory: Path) -> Path:
    write_synthetic_dataset(directory)
    return directory
