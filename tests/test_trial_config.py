"""TrialConfig: validation, searched parameters applied with with_params, dict round trip."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from trainables.config import OPTIMIZER_PREFIX, DataPaths, TrialConfig
from trainables.losses import LOSS_NAMES, loss_defaults
from trainables.model import ModelConfig

DATA = DataPaths("/data/synth")


def config(**overrides) -> TrialConfig:
    return TrialConfig(data=DATA, **overrides)


def test_defaults_are_valid_and_frozen():
    cfg = config()
    assert cfg.loss == "clip" and cfg.optimizer == "adamw"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"loss": "infonce"}, r"unknown loss 'infonce'; choose one of clip, sogclr"),
        (
            {"optimizer": "adam"},
            r"unknown optimizer 'adam'; choose one of sgd_nesterov, adamw, adamp",
        ),
        ({"loss_params": {"gamma": 0.5}}, r"loss 'clip' has no parameter 'gamma'.*temperature"),
        (
            {"loss": "sogclr", "loss_params": {"tau": 0.1}},
            r"loss 'sogclr' has no parameter 'tau'.*temperature, gamma, eps",
        ),
        ({"batch_size": 1}, r"batch_size must be >= 2"),
        ({"batch_size": 0}, r"trial.batch_size must be > 0"),
        ({"lr": 0.0}, r"trial.lr must be > 0"),
        ({"epochs": -1}, r"trial.epochs must be > 0"),
        ({"warmup_fraction": -0.1}, r"trial.warmup_fraction must be in \[0, 1\]"),
        ({"warmup_fraction": 1.5}, r"trial.warmup_fraction must be in \[0, 1\]"),
        ({"min_lr_ratio": 2.0}, r"trial.min_lr_ratio must be in \[0, 1\]"),
        ({"max_bad_image_fraction": 1.01}, r"trial.max_bad_image_fraction must be in \[0, 1\]"),
        ({"max_bad_image_fraction": -0.01}, r"trial.max_bad_image_fraction must be in \[0, 1\]"),
        ({"weight_decay": -1e-4}, r"trial.weight_decay and num_workers must be >= 0"),
        ({"num_workers": -1}, r"trial.weight_decay and num_workers must be >= 0"),
        (
            {"optimizer_params": {"momentum": 0.9}},
            r"^optimizer 'adamw' has no parameter 'momentum'; "
            r"its parameters are beta1, beta2, eps$",
        ),
        (
            {"optimizer": "lion", "optimizer_params": {"beta2": 1.5}},
            r"^optimizer 'lion': beta2 must be a number in \[0, 1\), got 1.5$",
        ),
    ],
)
def test_invalid_values_are_rejected(overrides, pattern):
    with pytest.raises(ValueError, match=pattern):
        config(**overrides)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_fraction_bounds_are_inclusive(fraction):
    cfg = config(warmup_fraction=fraction, min_lr_ratio=fraction, max_bad_image_fraction=fraction)
    assert cfg.max_bad_image_fraction == fraction


def test_valid_loss_params_are_accepted():
    cfg = config(loss="sogclr", loss_params={"temperature": 0.05, "gamma": 0.9})
    assert dict(cfg.loss_params) == {"temperature": 0.05, "gamma": 0.9}


def test_with_params_routes_fields_loss_params_and_optimizer_params():
    base = config(epochs=4)
    params = {
        "loss": "sogclr",
        "optimizer": "sgd_nesterov",
        "lr": 0.3,
        "weight_decay": 1e-3,
        "batch_size": 32,
        "temperature": 0.05,
        "gamma": 0.7,
        "optimizer_momentum": 0.95,
    }
    cfg = base.with_params(params)
    assert (cfg.loss, cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size) == (
        "sogclr",
        "sgd_nesterov",
        0.3,
        1e-3,
        32,
    )
    assert dict(cfg.loss_params) == {"temperature": 0.05, "gamma": 0.7}
    assert dict(cfg.optimizer_params) == {"momentum": 0.95}
    assert cfg.epochs == 4 and cfg.data == DATA and cfg.model == base.model  # untouched
    assert (base.loss, base.lr, dict(base.loss_params)) == ("clip", 1e-3, {})  # base unchanged


def test_an_optimizer_knob_and_a_loss_parameter_of_the_same_name_stay_apart():
    cfg = config().with_params({"loss": "sogclr", "eps": 1e-6, "optimizer_eps": 1e-7})
    assert dict(cfg.loss_params) == {"eps": 1e-6}
    assert dict(cfg.optimizer_params) == {"eps": 1e-7}


def test_no_loss_parameter_looks_like_an_optimizer_knob():
    for loss in LOSS_NAMES:
        assert not [p for p in loss_defaults(loss) if p.startswith(OPTIMIZER_PREFIX)], loss


def test_with_params_replaces_the_optimizer_knobs_with_the_searched_ones():
    """The base's knobs belong to its optimizer: a new optimizer starts from its defaults."""
    base = config(optimizer_params={"beta2": 0.98})
    assert dict(base.with_params({"optimizer": "sgd_nesterov"}).optimizer_params) == {}
    assert dict(base.with_params({"optimizer_beta1": 0.8}).optimizer_params) == {"beta1": 0.8}


def test_with_params_validates_the_result():
    base = config()
    with pytest.raises(ValueError, match=r"loss 'clip' has no parameter 'gamma'"):
        base.with_params({"temperature": 0.05, "gamma": 0.5})
    with pytest.raises(ValueError, match=r"trial.lr must be > 0"):
        base.with_params({"lr": -1.0})
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamax'"):
        base.with_params({"optimizer": "adamax"})
    with pytest.raises(ValueError, match=r"optimizer 'lion' has no parameter 'eps'"):
        base.with_params({"optimizer": "lion", "optimizer_eps": 1e-8})
    with pytest.raises(ValueError, match=r"optimizer 'adamw' has no parameter 'params'"):
        base.with_params({"optimizer_params": {"beta2": 0.9}})  # not a searched field


def test_with_params_cannot_replace_data_or_model():
    """data and model are not searched: such keys are taken for loss parameters, and no loss
    has them."""
    base = config()
    with pytest.raises(ValueError, match=r"no parameter 'data'"):
        base.with_params({"data": DataPaths("/elsewhere")})
    with pytest.raises(ValueError, match=r"no parameter 'model'"):
        base.with_params({"model": ModelConfig(embed_dim=8)})


def test_to_dict_from_dict_round_trip_through_json():
    cfg = config(
        model=ModelConfig(embed_dim=16, image_width=8, text_width=16, text_layers=1, text_heads=1),
        loss="sogclr",
        loss_params={"temperature": 0.03, "gamma": 0.6},
        optimizer="adamp",
        optimizer_params={"beta2": 0.98, "nesterov": False},
        lr=0.5,
        epochs=3,
        seed=7,
        max_bad_image_fraction=0.2,
    )
    as_dict = cfg.to_dict()
    assert as_dict["data"]["dir"] == "/data/synth"
    assert as_dict["model"]["embed_dim"] == 16
    assert as_dict["loss_params"] == {"temperature": 0.03, "gamma": 0.6}
    assert as_dict["optimizer_params"] == {"beta2": 0.98, "nesterov": False}
    restored = TrialConfig.from_dict(json.loads(json.dumps(as_dict)))
    assert restored == cfg
    assert isinstance(restored.data, DataPaths) and isinstance(restored.model, ModelConfig)
    assert restored.to_dict() == as_dict


def test_from_dict_validates():
    values = config().to_dict()
    values["batch_size"] = 1
    with pytest.raises(ValueError, match="batch_size"):
        TrialConfig.from_dict(values)


def test_data_paths_resolve_relative_to_dir(tmp_path: Path):
    paths = DataPaths(str(tmp_path), train_images="imgs", zeroshot_dir=str(tmp_path / "zs"))
    assert paths.path("train_json") == (tmp_path / "train.json").resolve()
    assert paths.path("train_images") == (tmp_path / "imgs").resolve()
    assert paths.path("zeroshot_dir") == (tmp_path / "zs").resolve()  # absolute stays absolute
