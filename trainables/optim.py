"""Optimizers by name, with parameter groups: no weight decay on biases and norm weights.

Only parameters with two or more dimensions (weight matrices, conv kernels, embeddings) decay;
1-D parameters (biases, LayerNorm/BatchNorm scales and shifts) form a group with decay 0,
as in the reference optimizer factory. A loss's own parameters (a learnable temperature,
SigLIP's scale and bias) join at decay 0, except those the loss places in groups of its own
through ``loss.optimizer_groups(lr)`` (the TempGenerator: its own lr and decay).

Where each optimizer comes from:

- ``sgd_nesterov``, ``adamw``, ``radam``: ``torch.optim``.
- ``adamp``, ``sgdp``: ``adamp``, the package of the AdamP paper's authors (clovaai), with the
  reference code's settings (AdamP: wd_ratio 0.01, nesterov; SGDP: momentum 0.9, nesterov).
- ``lion``: ``lion-pytorch`` (lucidrains), the implementation the Lion paper's README points
  to; betas (0.9, 0.99).
- ``lamb``: ``timm.optim.Lamb``, maintained with timm (bias correction, eps 1e-6, gradient
  clipping at norm 1), instead of the unmaintained torch-optimizer package or apex's
  CUDA-only FusedLAMB that the reference used.

Besides lr and weight decay (the same for every optimizer), each optimizer declares its own
knobs in :data:`OPTIMIZERS` (a :class:`Knob` each: default, meaning, valid values): SGD's
momentum, the Adam-type and Lion ``beta1`` / ``beta2`` (passed as ``betas``), ``eps``, the
AdamP/SGDP projection's ``delta``, ``wd_ratio`` and ``nesterov``, LAMB's ``max_grad_norm``.
A trial sets them in ``TrialConfig.optimizer_params``; a search space names them
``optimizer_<knob>`` (see :mod:`trainables.config`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from adamp import SGDP, AdamP
from lion_pytorch import Lion
from torch import nn

from trainables.losses import ContrastiveLoss

ParamGroups = list[dict]


def parameter_groups(named_parameters: Iterable[tuple[str, nn.Parameter]], weight_decay: float):
    """Split trainable parameters into a decay group and a no-decay group (1-D tensors)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, param in named_parameters:
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def loss_parameter_groups(loss_fn: ContrastiveLoss, lr: float) -> ParamGroups:
    """Groups for the parameters of ``loss_fn``: its own ``optimizer_groups(lr)``, and every
    other trainable loss parameter at weight decay 0."""
    groups = list(loss_fn.optimizer_groups(lr))
    placed = {id(p) for group in groups for p in group["params"]}
    rest = [p for p in loss_fn.parameters() if p.requires_grad and id(p) not in placed]
    return [*groups, {"params": rest, "weight_decay": 0.0}]


KnobValue = float | bool


@dataclass(frozen=True)
class Knob:
    """One setting of an optimizer that a trial may set (``TrialConfig.optimizer_params``).

    ``default`` is the value used when a trial does not set it: the reference code's where it
    passes one (reference/losses.md §2.4), else the package's. A knob whose default is a bool
    is a flag; any other takes a number in the interval from ``low`` to ``high``, each end
    excluded when ``low_open`` / ``high_open``.
    """

    default: KnobValue
    doc: str
    low: float = 0.0
    high: float = math.inf
    low_open: bool = False
    high_open: bool = True

    def interval(self) -> str:
        """The valid numbers as text, for example ``[0, 1)``."""
        opening = "(" if self.low_open else "["
        closing = ")" if self.high_open else "]"
        return f"{opening}{self.low:g}, {self.high:g}{closing}"

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this knob, or None if it is valid."""
        if isinstance(self.default, bool):
            return None if isinstance(value, bool) else "must be true or false"
        valid = (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (value > self.low if self.low_open else value >= self.low)
            and (value < self.high if self.high_open else value <= self.high)
        )
        return None if valid else f"must be a number in {self.interval()}"


def _rate(default: float, doc: str) -> Knob:
    """A decay rate or momentum coefficient, in [0, 1)."""
    return Knob(default, doc, high=1.0)


def _positive(default: float, doc: str) -> Knob:
    """A number > 0."""
    return Knob(default, doc, low_open=True)


def _flag(default: bool, doc: str) -> Knob:
    """A bool."""
    return Knob(default, doc)


def _adam_knobs(eps: float) -> dict[str, Knob]:
    """The knobs of an Adam-type update (betas as two knobs, packed into ``betas``)."""
    return {
        "beta1": _rate(0.9, "decay rate of the running mean of gradients (1st moment)"),
        "beta2": _rate(0.999, "decay rate of the running mean of squared gradients (2nd moment)"),
        "eps": _positive(eps, "added to the root of the second moment before dividing by it"),
    }


def _projection_knobs(wd_ratio: float) -> dict[str, Knob]:
    """The knobs of AdamP's and SGDP's projection (clovaai's ``adamp`` package)."""
    return {
        "delta": _positive(
            0.1,
            "a weight whose cosine with its gradient stays below delta / sqrt(fan-in) counts "
            "as scale-invariant: the radial part of its update is removed",
        ),
        "wd_ratio": Knob(
            wd_ratio, "factor on the weight decay of a projected weight", high=1.0, high_open=False
        ),
        "nesterov": _flag(True, "Nesterov momentum (the reference code's setting)"),
    }


SGD_MOMENTUM = "momentum coefficient of the velocity (the reference's course scripts: 0.9)"


def _lamb(params: Iterable[dict], **kwargs: Any) -> torch.optim.Optimizer:
    """``timm.optim.Lamb``, with timm imported on first use: importing it takes about 1.7 s,
    which every trial process paid at start-up though most never train with LAMB."""
    from timm.optim import Lamb

    return Lamb(params, **kwargs)


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer class, the knobs a trial may set and the arguments it always gets."""

    cls: Callable[..., torch.optim.Optimizer]
    knobs: Mapping[str, Knob]
    fixed: Mapping[str, Any] = field(default_factory=dict)

    def kwargs(self, values: Mapping[str, KnobValue]) -> dict[str, Any]:
        """Keyword arguments for ``cls``: ``fixed`` and every knob (``values``, else its
        default), with ``beta1`` and ``beta2`` packed into ``betas``."""
        kwargs: dict[str, Any] = {key: knob.default for key, knob in self.knobs.items()}
        kwargs |= values
        if "beta1" in kwargs:
            kwargs["betas"] = (kwargs.pop("beta1"), kwargs.pop("beta2"))
        return {**self.fixed, **kwargs}


OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd_nesterov": OptimizerSpec(
        torch.optim.SGD,
        {"momentum": Knob(0.9, SGD_MOMENTUM + "; > 0 for Nesterov", high=1.0, low_open=True)},
        fixed={"nesterov": True},
    ),
    "adamw": OptimizerSpec(torch.optim.AdamW, _adam_knobs(eps=1e-8)),
    "adamp": OptimizerSpec(AdamP, _adam_knobs(eps=1e-8) | _projection_knobs(wd_ratio=0.01)),
    "sgdp": OptimizerSpec(
        SGDP, {"momentum": _rate(0.9, SGD_MOMENTUM)} | _projection_knobs(wd_ratio=0.1)
    ),
    "lion": OptimizerSpec(
        Lion,
        {
            "beta1": _rate(0.9, "weight of the momentum (vs the gradient) in the signed update"),
            "beta2": _rate(0.99, "decay rate of the momentum"),
        },
    ),
    "lamb": OptimizerSpec(
        _lamb,
        _adam_knobs(eps=1e-6)
        | {"max_grad_norm": _positive(1.0, "the global gradient norm is clipped to this")},
    ),
    "radam": OptimizerSpec(torch.optim.RAdam, _adam_knobs(eps=1e-8)),
}


def check_optimizer_params(name: str, values: Mapping[str, Any]) -> None:
    """Raise a one-line ValueError unless ``name`` is an optimizer and every key of ``values``
    one of its knobs, with a value that knob takes."""
    spec = _spec(name)
    for key in sorted(values):
        if key not in spec.knobs:
            raise ValueError(
                f"optimizer {name!r} has no parameter {key!r}; "
                f"its parameters are {', '.join(spec.knobs)}"
            )
        problem = spec.knobs[key].problem(values[key])
        if problem:
            raise ValueError(f"optimizer {name!r}: {key} {problem}, got {values[key]!r}")


def _spec(name: str) -> OptimizerSpec:
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def build_optimizer(
    name: str,
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    weight_decay: float,
    knobs: Mapping[str, KnobValue] = MappingProxyType({}),
    extra_groups: Sequence[dict] = (),
) -> torch.optim.Optimizer:
    """The optimizer ``name`` with the values ``knobs`` of its knobs (the others at their
    defaults) over the decay / no-decay groups of ``named_parameters`` plus ``extra_groups``
    (for example :func:`loss_parameter_groups`); empty groups are dropped."""
    check_optimizer_params(name, knobs)
    spec = OPTIMIZERS[name]
    groups = [*parameter_groups(named_parameters, weight_decay), *extra_groups]
    groups = [g for g in groups if g["params"]]
    return spec.cls(groups, lr=lr, **spec.kwargs(knobs), **fused_kwargs(spec, groups))


def fused_kwargs(spec: OptimizerSpec, groups: Sequence[dict]) -> dict[str, Any]:
    """``{"fused": True}`` for AdamW when every parameter is on CUDA (the update's
    elementwise steps fused into a few kernels), else nothing."""
    on_cuda = all(p.is_cuda for g in groups for p in g["params"])
    return {"fused": True} if spec.cls is torch.optim.AdamW and on_cuda else {}
