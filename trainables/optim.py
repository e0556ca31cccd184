"""Optimizers by name, with parameter groups: no weight decay on biases and norm weights.

Only parameters with two or more dimensions (weight matrices, conv kernels, embeddings) decay;
1-D parameters (biases, LayerNorm/BatchNorm scales and shifts) form a group with decay 0,
as in the reference optimizer factory. A loss's own parameters (a learnable temperature,
SigLIP's scale and bias) join at decay 0, except those the loss places in groups of its own
through ``loss.optimizer_groups(lr)`` (the TempGenerator: its own lr and decay).

Where each optimizer comes from:

- ``sgd_nesterov``, ``adamw``, ``radam``: ``torch.optim``.
- ``adamp``, ``sgdp``: ``adamp``, the package of the AdamP paper's authors (clovaai), with the
  reference code's settings (AdamP: wd_ratio 0.01, nesterov; SGDP: momentum, nesterov).
- ``lion``: ``lion-pytorch`` (lucidrains), the implementation the Lion paper's README points
  to; betas (0.9, 0.99).
- ``lamb``: ``timm.optim.Lamb``, maintained with timm (bias correction, eps 1e-6, gradient
  clipping at norm 1), instead of the unmaintained torch-optimizer package or apex's
  CUDA-only FusedLAMB that the reference used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from adamp import SGDP, AdamP
from lion_pytorch import Lion
from timm.optim import Lamb
from torch import nn

from trainables.losses import ContrastiveLoss

ParamGroups = list[dict]


def parameter_groups(named_parameters: Iterable[tuple[str, nn.Parameter]], weight_decay: float):
    """Split trainable parameters into a decay group and a no-decay group (1-D tensors)."""
    decay, no_decay = [], []
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


def _adamw(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=lr)


def _sgd_nesterov(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)


def _radam(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.RAdam(groups, lr=lr)


def _adamp(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return AdamP(groups, lr=lr, wd_ratio=0.01, nesterov=True)


def _sgdp(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return SGDP(groups, lr=lr, momentum=momentum, nesterov=True)


def _lion(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return Lion(groups, lr=lr, betas=(0.9, 0.99))


def _lamb(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return Lamb(groups, lr=lr)


OPTIMIZERS: dict[str, Callable[[ParamGroups, float, float], torch.optim.Optimizer]] = {
    "sgd_nesterov": _sgd_nesterov,
    "adamw": _adamw,
    "adamp": _adamp,
    "sgdp": _sgdp,
    "lion": _lion,
    "lamb": _lamb,
    "radam": _radam,
}


def build_optimizer(
    name: str,
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    extra_groups: Sequence[dict] = (),
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over the decay / no-decay groups of ``named_parameters`` plus
    ``extra_groups`` (for example :func:`loss_parameter_groups`); empty groups are dropped."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    groups = [*parameter_groups(named_parameters, weight_decay), *extra_groups]
    return OPTIMIZERS[name]([g for g in groups if g["params"]], lr, momentum)
