"""One trial without Ray: the metric contract, determinism, exact resume, unreadable images."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from trainables.checkpoint import STATE_FILE
from trainables.config import DataPaths, TrialConfig
from trainables.metric_names import EPOCH_METRICS, METRIC_MODES, TIMINGS
from trainables.model import ModelConfig
from trainables.trial import TrialFailure, run_trial

TINY_MODEL = ModelConfig(embed_dim=16, image_width=8, text_width=16, text_layers=1, text_heads=1)

# DESIGN.md, "Contracts": the per-epoch metrics every trial reports (written out here to check
# trainables.metric_names against the contract, not against itself).
CONTRACT = (
    "epoch",
    "train_loss",
    "txt_r1",
    "txt_r5",
    "txt_r10",
    "img_r1",
    "img_r5",
    "img_r10",
    "txt_r_mean",
    "img_r_mean",
    "r_mean",
    "zs_top1",
    "zs_top3",
    "zs_top5",
    "zs_top10",
)
PERCENTAGES = CONTRACT[2:]
N_TRAIN = 96  # tiny_dataset's train pairs


def tiny_config(data_dir: Path, **overrides) -> TrialConfig:
    values = {
        "data": DataPaths(str(data_dir)),
        "model": TINY_MODEL,
        "epochs": 2,
        "batch_size": 16,
        "eval_batch_size": 128,
    }
    return TrialConfig(**(values | overrides))


def run(cfg: TrialConfig, *, keep_dir: Path | None = None, resume_from: Path | None = None):
    """Run ``cfg`` and return its reported metrics; with ``keep_dir``, copy the checkpoint of
    epoch e to ``keep_dir / f"epoch{e}"`` (the reported directory is temporary). Every epoch
    ``cfg.checkpoints_after`` must come with a checkpoint, the others without."""
    reported: list[dict[str, float]] = []

    def report(metrics: dict[str, float], checkpoint_dir: Path | None) -> None:
        reported.append(dict(metrics))
        assert (checkpoint_dir is not None) == cfg.checkpoints_after(int(metrics["epoch"]))
        if checkpoint_dir is None:
            return
        assert (checkpoint_dir / STATE_FILE).is_file()
        if keep_dir is not None:
            shutil.copytree(checkpoint_dir, keep_dir / f"epoch{metrics['epoch']}")

    run_trial(cfg, report, resume_from=resume_from)
    return reported


def without_timings(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics that must be reproducible (wall-clock timings are not)."""
    return {k: v for k, v in metrics.items() if not k.startswith("time_")}


@pytest.fixture(scope="module", params=["clip", "sogclr"])
def two_epoch_run(request, tiny_dataset, tmp_path_factory):
    """(config, metrics, checkpoint copies dir) of an uninterrupted 2-epoch run per loss."""
    keep = tmp_path_factory.mktemp(f"ckpt-{request.param}")
    cfg = tiny_config(tiny_dataset, loss=request.param)
    return cfg, run(cfg, keep_dir=keep), keep


def test_the_metric_list_is_the_contract():
    assert EPOCH_METRICS == CONTRACT
    modes = {"train_loss": "min", **dict.fromkeys(CONTRACT[2:], "max")}  # epoch is no target
    assert modes == METRIC_MODES


def test_every_listed_metric_is_reported_each_epoch(two_epoch_run):
    cfg, reported, _ = two_epoch_run
    assert [m["epoch"] for m in reported] == list(range(1, cfg.epochs + 1))
    for metrics in reported:
        assert set(metrics) == {*EPOCH_METRICS, *TIMINGS, "skipped_images"}, sorted(metrics)
        assert isinstance(metrics["train_loss"], float)
        assert torch.isfinite(torch.tensor(metrics["train_loss"]))
        for name in PERCENTAGES:
            assert 0.0 <= metrics[name] <= 100.0, (name, metrics[name])
        # recall@K and top-k grow with K; means are means.
        for prefix in ("txt_r", "img_r"):
            r1, r5, r10 = (metrics[f"{prefix}{k}"] for k in (1, 5, 10))
            assert r1 <= r5 <= r10
            assert metrics[f"{prefix}_mean"] == pytest.approx((r1 + r5 + r10) / 3)
        assert metrics["r_mean"] == pytest.approx(
            (metrics["txt_r_mean"] + metrics["img_r_mean"]) / 2
        )
        zs = [metrics[f"zs_top{k}"] for k in (1, 3, 5, 10)]
        assert zs == sorted(zs)
        assert metrics["skipped_images"] == 0.0


def test_train_loss_changes_between_epochs(two_epoch_run):
    _, reported, _ = two_epoch_run
    assert reported[0]["train_loss"] != reported[1]["train_loss"]


def test_same_config_and_seed_give_identical_metrics(two_epoch_run):
    cfg, reported, _ = two_epoch_run
    again = run(cfg)
    assert [without_timings(m) for m in again] == [without_timings(m) for m in reported]


class _Stop(Exception):
    """Raised by a report callback to end a trial early."""


def test_another_seed_gives_other_metrics(tiny_dataset, two_epoch_run):
    cfg, reported, _ = two_epoch_run
    if cfg.loss != "clip":
        pytest.skip("one loss suffices")
    other: list[dict[str, float]] = []

    def report_once(metrics, _checkpoint_dir):
        other.append(dict(metrics))
        raise _Stop

    with pytest.raises(_Stop):
        run_trial(tiny_config(tiny_dataset, loss=cfg.loss, seed=1), report_once)
    assert other[0]["epoch"] == 1
    assert other[0]["train_loss"] != reported[0]["train_loss"]
    assert without_timings(other[0]) != without_timings(reported[0])


def test_resume_continues_exactly(two_epoch_run):
    """Resuming from the epoch-1 checkpoint reproduces epoch 2 bit for bit; for sogclr this
    needs the per-sample estimator buffers u, b to be in the checkpoint (in epoch 2, gamma < 1
    mixes the old u into the new one)."""
    cfg, reported, keep = two_epoch_run
    checkpoint = keep / "epoch1"
    payload = torch.load(checkpoint / STATE_FILE, weights_only=False)
    assert payload["epochs_done"] == 1
    if cfg.loss == "sogclr":
        buffers = payload["loss"]
        assert {"image_state.u", "image_state.b", "text_state.u", "text_state.b"} <= set(buffers)
        assert buffers["image_state.u"].shape == (N_TRAIN,)
        assert (buffers["image_state.u"] > 0).all()  # every sample was seen in epoch 1

    resumed = run(cfg, resume_from=checkpoint)
    assert [m["epoch"] for m in resumed] == [2]
    assert without_timings(resumed[0]) == without_timings(reported[1])


def test_resume_from_final_checkpoint_reports_nothing(two_epoch_run):
    cfg, _, keep = two_epoch_run
    if cfg.loss != "clip":
        pytest.skip("one loss suffices")
    assert run(cfg, resume_from=keep / f"epoch{cfg.epochs}") == []


def test_checkpoints_only_at_the_checkpoint_epochs_and_resume_reproduces(tiny_dataset, tmp_path):
    """With checkpoint_epochs (2, 4) of 4 epochs, only epochs 2 and 4 report a checkpoint;
    resumed from epoch 2, epochs 3 and 4 come out bit for bit as uninterrupted. With dropout
    on, that needs the RNG state of the epoch-2 checkpoint (epoch 3 has none)."""
    dropout_model = dataclasses.replace(TINY_MODEL, dropout=0.2)
    cfg = tiny_config(tiny_dataset, epochs=4, checkpoint_epochs=(2, 4), model=dropout_model)
    reported = run(cfg, keep_dir=tmp_path)
    assert [m["epoch"] for m in reported] == [1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch2", "epoch4"]
    resumed = run(cfg, resume_from=tmp_path / "epoch2")
    assert [m["epoch"] for m in resumed] == [3, 4]
    assert [without_timings(m) for m in resumed] == [without_timings(m) for m in reported[2:]]


# --- unreadable train images -----------------------------------------------------------------

N_CORRUPT = 3  # of 96: 3.1%


@pytest.fixture(scope="module")
def corrupt_dataset(tiny_dataset, tmp_path_factory) -> Path:
    """A copy of tiny_dataset whose first N_CORRUPT train images are garbage bytes."""
    root = tmp_path_factory.mktemp("corrupt") / "data"
    shutil.copytree(tiny_dataset, root)
    rows = json.loads((root / "train.json").read_text())
    for row in rows[:N_CORRUPT]:
        (root / row["image"]).write_bytes(b"\x00garbage, not an image\xff" * 8)
    return root


def test_a_few_unreadable_images_are_skipped(corrupt_dataset):
    cfg = tiny_config(corrupt_dataset, epochs=1, max_bad_image_fraction=0.05)
    reported = run(cfg)
    assert len(reported) == 1
    assert reported[0]["skipped_images"] == N_CORRUPT  # every train image is read once per epoch
    assert set(CONTRACT) <= set(reported[0])


def test_too_many_unreadable_images_fail_the_trial(corrupt_dataset):
    cfg = tiny_config(corrupt_dataset, epochs=1, max_bad_image_fraction=0.02)
    reported = []
    with pytest.raises(TrialFailure) as excinfo:
        run_trial(cfg, lambda metrics, _: reported.append(metrics))
    message = str(excinfo.value)
    assert f"{N_CORRUPT} of {N_TRAIN}" in message
    assert "3.1%" in message
    assert "trial.max_bad_image_fraction" in message
    assert "2%" in message
    assert reported == []  # it fails before reporting the epoch


def test_a_batch_larger_than_the_train_set_fails_instead_of_training_nothing(tiny_dataset):
    """With drop_last, batch_size > train pairs would make no step and report train_loss 0."""
    cfg = tiny_config(tiny_dataset, epochs=1, batch_size=N_TRAIN + 1)
    with pytest.raises(
        TrialFailure, match=r"no optimizer step.*96 train pairs.*trial.batch_size 97"
    ):
        run_trial(cfg, lambda metrics, _: None)
