"""Optimizers by name, their knobs and their decay / no-decay parameter groups."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch
from lion_pytorch import Lion

from trainables.checkpoint import STATE_FILE
from trainables.config import DataPaths, TrialConfig
from trainables.model import BimodalModel, ModelConfig
from trainables.optim import OPTIMIZERS, build_optimizer, loss_parameter_groups, parameter_groups
from trainables.trial import build_state, run_trial
from trainables.trial_data import load_trial_data

TINY_MODEL = ModelConfig(embed_dim=16, image_width=8, text_width=16, text_layers=1, text_heads=1)


def tiny_model() -> BimodalModel:
    torch.manual_seed(0)
    return BimodalModel(TINY_MODEL, vocab_size=50, max_length=16, pad_id=0)


def test_parameter_groups_split_matrices_from_biases_and_norms():
    model = tiny_model()
    decay, no_decay = parameter_groups(model.named_parameters(), weight_decay=0.05)
    assert decay["weight_decay"] == 0.05
    assert no_decay["weight_decay"] == 0.0
    decay_ids = {id(p) for p in decay["params"]}
    no_decay_ids = {id(p) for p in no_decay["params"]}
    assert not decay_ids & no_decay_ids
    assert decay_ids | no_decay_ids == {id(p) for p in model.parameters()}

    names = dict(model.named_parameters())
    group_of = {name: ("decay" if id(p) in decay_ids else "no_decay") for name, p in names.items()}
    biases = [n for n in names if n.endswith(".bias")]
    layer_norms = [n for n in names if "norm" in n.split(".")[-2] and n.endswith(".weight")]
    batch_norms = [f"image_encoder.features.{i}.1.weight" for i in range(4)]
    matrices = [
        "image_encoder.features.0.0.weight",  # conv kernel (4-D)
        "image_encoder.projection.weight",
        "text_encoder.projection.weight",
        "text_encoder.bert.word_embeddings.weight",
        "text_encoder.bert.position_embeddings.weight",
        "text_encoder.bert.encoder.layers.0.self_attn.in_proj_weight",
    ]
    assert biases and layer_norms and set(batch_norms) <= set(names)
    for name in biases + layer_norms + batch_norms:
        assert group_of[name] == "no_decay", name
    for name in matrices:
        assert group_of[name] == "decay", name
    for name, param in names.items():
        assert group_of[name] == ("decay" if param.ndim >= 2 else "no_decay"), name


def test_parameter_groups_leave_out_frozen_parameters():
    model = tiny_model()
    model.image_encoder.projection.weight.requires_grad_(False)
    model.image_encoder.projection.bias.requires_grad_(False)
    decay, no_decay = parameter_groups(model.named_parameters(), weight_decay=0.1)
    kept = {id(p) for p in decay["params"] + no_decay["params"]}
    assert id(model.image_encoder.projection.weight) not in kept
    assert id(model.image_encoder.projection.bias) not in kept
    assert len(kept) == sum(1 for p in model.parameters() if p.requires_grad)


def test_sgd_nesterov_uses_nesterov_momentum():
    model = tiny_model()
    optimizer = build_optimizer("sgd_nesterov", model.named_parameters(), lr=0.3, weight_decay=0.01)
    assert isinstance(optimizer, torch.optim.SGD)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    for group in optimizer.param_groups:
        assert group["nesterov"] is True
        assert group["momentum"] == 0.9
        assert group["lr"] == 0.3


def test_adamw_groups_carry_their_decay():
    model = tiny_model()
    optimizer = build_optimizer("adamw", model.named_parameters(), lr=2e-3, weight_decay=0.2)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.2, 0.0]
    assert all(g["lr"] == 2e-3 for g in optimizer.param_groups)


# Each optimizer's knobs and their defaults (reference/losses.md §2.4 and §8: the reference
# code's settings where it passes them, else the package's defaults).
DEFAULTS = {
    "sgd_nesterov": {"momentum": 0.9},
    "adamw": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
    "adamp": {
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "delta": 0.1,
        "wd_ratio": 0.01,
        "nesterov": True,
    },
    "sgdp": {"momentum": 0.9, "delta": 0.1, "wd_ratio": 0.1, "nesterov": True},
    "lion": {"beta1": 0.9, "beta2": 0.99},
    "lamb": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "max_grad_norm": 1.0},
    "radam": {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
}
BETA_INDEX = {"beta1": 0, "beta2": 1}


def group_value(group: dict, knob: str):
    """The value of ``knob`` as the torch optimizer holds it in a parameter group."""
    return group["betas"][BETA_INDEX[knob]] if knob in BETA_INDEX else group[knob]


def layer_optimizer(name: str, **knobs) -> torch.optim.Optimizer:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    return build_optimizer(name, layer.named_parameters(), lr=1e-3, weight_decay=0.1, knobs=knobs)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_an_optimizer_without_knobs_set_gets_the_reference_defaults(name):
    assert set(DEFAULTS) == set(OPTIMIZERS)
    knobs = OPTIMIZERS[name].knobs
    assert {key: knob.default for key, knob in knobs.items()} == DEFAULTS[name]
    assert all(knob.doc for knob in knobs.values())
    for group in layer_optimizer(name).param_groups:
        assert {key: group_value(group, key) for key in knobs} == DEFAULTS[name]


def valid_values(knob) -> list:
    """A value between the lower end and the default, and every closed finite end."""
    if isinstance(knob.default, bool):
        return [not knob.default]
    ends = [knob.low] * (not knob.low_open) + [knob.high] * (not knob.high_open)
    return [(knob.low + knob.default) / 2, *ends]


@pytest.mark.parametrize(
    ("name", "key"), [(name, key) for name, spec in OPTIMIZERS.items() for key in spec.knobs]
)
def test_a_set_knob_reaches_every_param_group_and_leaves_the_others(name, key):
    """Also: the package accepts each closed end of the range a knob declares."""
    for value in valid_values(OPTIMIZERS[name].knobs[key]):
        for group in layer_optimizer(name, **{key: value}).param_groups:
            assert group_value(group, key) == value
            others = {k: group_value(group, k) for k in DEFAULTS[name] if k != key}
            assert others == {k: v for k, v in DEFAULTS[name].items() if k != key}


@pytest.mark.parametrize("beta2", [0.9, 0.95])
def test_lion_updates_its_momentum_with_the_beta2_set(beta2):
    """From zero momentum one Lion step leaves m = (1 - beta2) g: the update uses the value."""
    optimizer = layer_optimizer("lion", beta2=beta2)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for param in params:
        param.grad = torch.linspace(-1.0, 1.0, param.numel()).reshape(param.shape)
    optimizer.step()
    for param in params:
        torch.testing.assert_close(optimizer.state[param]["exp_avg"], (1 - beta2) * param.grad)


@pytest.mark.parametrize(
    ("name", "knobs", "message"),
    [
        (
            "adamw",
            {"momentum": 0.9},
            "optimizer 'adamw' has no parameter 'momentum'; its parameters are beta1, beta2, eps",
        ),
        ("lion", {"eps": 1e-8}, "optimizer 'lion' has no parameter 'eps'; its parameters are "),
        ("lion", {"beta2": 1.0}, "optimizer 'lion': beta2 must be a number in [0, 1), got 1.0"),
        ("adamw", {"beta1": -0.1}, "optimizer 'adamw': beta1 must be a number in [0, 1), got -0.1"),
        ("adamw", {"beta2": True}, "optimizer 'adamw': beta2 must be a number in [0, 1), got True"),
        ("radam", {"beta2": "0.99"}, "optimizer 'radam': beta2 must be a number in [0, 1), got '"),
        ("adamw", {"eps": 0}, "optimizer 'adamw': eps must be a number in (0, inf), got 0"),
        (
            "sgd_nesterov",
            {"momentum": 0.0},
            "optimizer 'sgd_nesterov': momentum must be a number in (0, 1), got 0.0",
        ),
        ("adamp", {"wd_ratio": 1.5}, "optimizer 'adamp': wd_ratio must be a number in [0, 1], "),
        ("sgdp", {"nesterov": 1}, "optimizer 'sgdp': nesterov must be true or false, got 1"),
    ],
)
def test_unknown_or_invalid_knobs_are_one_line_value_errors(name, knobs, message):
    with pytest.raises(ValueError) as caught:
        layer_optimizer(name, **knobs)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_unknown_optimizer_is_a_value_error():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"unknown optimizer 'adam'.*adamw.*lamb.*radam"):
        build_optimizer("adam", model.named_parameters(), lr=1e-3, weight_decay=0.0)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_one_step_in_a_trial_changes_the_parameters(name, tiny_dataset, tmp_path: Path):
    """batch_size = the 96 train pairs: the one-epoch trial makes exactly one optimizer step
    (at the full learning rate: no warm-up steps, cosine at progress 0)."""
    lr = {"sgd_nesterov": 0.1, "sgdp": 0.1, "lion": 1e-4}.get(name, 1e-3)
    cfg = TrialConfig(
        data=DataPaths(str(tiny_dataset)),
        model=TINY_MODEL,
        optimizer=name,
        lr=lr,
        epochs=1,
        batch_size=96,
        eval_batch_size=128,
    )
    model = build_state(cfg, load_trial_data(cfg)).model
    initial = {k: v.detach().clone() for k, v in model.named_parameters()}

    def keep(_metrics, checkpoint_dir: Path) -> None:
        shutil.copytree(checkpoint_dir, tmp_path / "ckpt")

    run_trial(cfg, keep)
    payload = torch.load(tmp_path / "ckpt" / STATE_FILE, weights_only=False)
    assert payload["scheduler"]["last_epoch"] == 1  # one scheduler step, so one optimizer step
    after = payload["model"]

    changed = [k for k, v in initial.items() if not torch.equal(v, after[k])]
    assert len(changed) >= 0.9 * len(initial), sorted(set(initial) - set(changed))
    for key in ("image_encoder.projection.weight", "text_encoder.projection.weight"):
        assert key in changed
    assert all(torch.isfinite(after[k]).all() for k in initial)

    optimizer_state = payload["optimizer"]["state"]
    assert optimizer_state, "the optimizer took no step"
    if name == "adamw":
        assert {float(s["step"]) for s in optimizer_state.values()} == {1.0}
        # AdamW's first step moves each element by at most lr (|m̂ / √v̂| ≤ 1) plus the decay.
        for key, before in initial.items():
            bound = lr * (1 + cfg.weight_decay * before.abs()) + 1e-7  # + float32 rounding
            assert ((after[key] - before).abs() <= bound).all(), key
        biggest = max((after[k] - v).abs().max().item() for k, v in initial.items())
        assert biggest > 0.5 * lr
    elif name in ("sgd_nesterov", "sgdp"):
        assert all("momentum" in key for s in optimizer_state.values() for key in s)
    else:
        assert all(s for s in optimizer_state.values()), "every parameter has moment state"


def test_a_searched_lion_beta2_reaches_the_optimizer_of_a_one_epoch_trial(tiny_dataset):
    base = TrialConfig(
        data=DataPaths(str(tiny_dataset)),
        model=TINY_MODEL,
        epochs=1,
        batch_size=32,
        eval_batch_size=128,
    )
    searched = {"optimizer": "lion", "lr": 1e-4, "optimizer_beta2": 0.95}
    cfg = base.with_params({**searched, "learnable_temperature": True})
    assert dict(cfg.optimizer_params) == {"beta2": 0.95}
    optimizer = build_state(cfg, load_trial_data(cfg)).optimizer
    assert isinstance(optimizer, Lion)
    assert [g["betas"] for g in optimizer.param_groups] == [(0.9, 0.95)] * 3  # + the loss's group
    reports = []

    def keep(metrics, checkpoint_dir: Path) -> None:
        saved = torch.load(checkpoint_dir / STATE_FILE, weights_only=False)["optimizer"]
        reports.append((metrics, saved))

    run_trial(cfg, keep)
    [(metrics, saved)] = reports
    assert metrics["epoch"] == 1 and math.isfinite(metrics["train_loss"])
    assert {tuple(g["betas"]) for g in saved["param_groups"]} == {(0.9, 0.95)}
    assert saved["state"], "the optimizer took no step"


class _LossWithGroups(torch.nn.Module):
    """A loss with a scalar parameter (default group) and a sub-network with its own group."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.zeros(()))
        self.net = torch.nn.Linear(4, 1)

    def optimizer_groups(self, lr: float) -> list[dict]:
        return [{"params": list(self.net.parameters()), "lr": lr * 0.1, "weight_decay": 1e-3}]


def test_loss_parameters_join_the_optimizer_in_their_groups():
    model = torch.nn.Linear(4, 4)
    loss_fn = _LossWithGroups()
    optimizer = build_optimizer(
        "adamw",
        model.named_parameters(),
        lr=1e-2,
        weight_decay=0.1,
        extra_groups=loss_parameter_groups(loss_fn, 1e-2),
    )
    groups = [
        (g["lr"], g["weight_decay"], {id(p) for p in g["params"]}) for g in optimizer.param_groups
    ]
    assert (1e-2, 0.1, {id(model.weight)}) in groups
    assert (1e-2, 0.0, {id(model.bias)}) in groups
    assert (1e-3, 1e-3, {id(p) for p in loss_fn.net.parameters()}) in groups
    assert (1e-2, 0.0, {id(loss_fn.scale)}) in groups
    assert len(groups) == 4
