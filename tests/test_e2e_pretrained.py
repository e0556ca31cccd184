"""Issue 10's "done when", end to end through the CLI: the built-in data written as WebDataset
shards, a ResNet-18 from a local state-dict file and a local tiny DistilBERT directory, bf16 on
CPU with the reference train transform, sweep -> confirm -> report, every command exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from tiny_pretrained import TinyTowers, tiny_towers  # noqa: F401  (a session fixture)

from study.cli import main

STUDY = """\
[study]
name = "pretrained"
space = "demo"
metric = "r_mean"
mode = "max"
trials_per_cell = 1
seed = 0
runs_dir = {runs}

[scheduler]
max_epochs = 1
grace_period = 1
reduction_factor = 2

[resources]
cpus_per_trial = 1
gpus_per_trial = 0
max_concurrent = 1

[data]
dir = {data}
train_format = "webdataset"
train_shards = {shards}
train_transform = "reference"

[model]
embed_dim = 16
image = "resnet18"
image_weights = {image_weights}
text = {text}

[trial]
batch_size = 16
precision = "bf16"

[sampler]
kind = "random"

[search]
cells = ["clip:adamw", "sogclr:adamw"]
"""


def clipstudy(*argv: str) -> None:
    """Run ``clipstudy argv`` as the console script does; it must exit with status 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 0, argv


@pytest.mark.slow  # about a minute on 2 busy cores: Ray, 2 sweep + 4 confirmation trials
def test_pretrained_towers_from_webdataset_shards_sweep_confirm_report(
    tmp_path: Path,
    tiny_towers: TinyTowers,  # noqa: F811
):
    data = tmp_path / "data"
    clipstudy(
        "data", "synth", str(data), "--format", "webdataset",
        "--n-train", "64", "--n-retrieval", "16", "--zeroshot-per-class", "1",
    )  # fmt: skip
    shards = sorted(p.stem for p in (data / "shards").glob("*.tar"))
    assert shards and not (data / ".clipstudy-cache").exists()
    config = tmp_path / "pretrained.toml"
    config.write_text(
        STUDY.format(
            runs=json.dumps(str(tmp_path / "runs")),
            data=json.dumps(str(data)),
            shards=json.dumps(f"shards/{{{shards[0]}..{shards[-1]}}}.tar"),
            image_weights=json.dumps(str(tiny_towers.resnet18_file)),
            text=json.dumps(str(tiny_towers.text_dir)),
        )
    )
    run_dir = tmp_path / "runs" / "pretrained"
    clipstudy("sweep", str(config))
    clipstudy("confirm", str(run_dir), "--seeds", "2")
    clipstudy("report", str(run_dir))

    confirmed = pd.read_parquet(run_dir / "confirm.parquet")
    assert sorted(set(zip(confirmed["cell"], confirmed["seed"], strict=True))) == [
        ("clip:adamw", 0),
        ("clip:adamw", 1),
        ("sogclr:adamw", 0),
        ("sogclr:adamw", 1),
    ]
    assert confirmed["r_mean"].notna().all()
    report = json.loads((run_dir / "report.json").read_text())
    assert report["primary"]["methods"] == ["clip:adamw", "sogclr:adamw"]
    assert (run_dir / "report.html").is_file()
    assert any((data / ".clipstudy-cache").iterdir())  # decoded once, from the shards
