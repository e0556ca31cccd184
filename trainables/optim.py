"""Optimizers by name, with parameter groups: no weight decay on biases and norm weights.

Only parameters with two or more dimensions (weight matrices, conv kernels, embeddings) decay;
1-D parameters (biases, LayerNorm/BatchNorm scales and shifts) form a group with decay 0,
as in the reference optimizer factory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

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


def _adamw(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=lr)


def _sgd_nesterov(groups: ParamGroups, lr: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)


OPTIMIZERS: dict[str, Callable[[ParamGroups, float, float], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "sgd_nesterov": _sgd_nesterov,
}


def build_optimizer(
    name: str,
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    *,
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """The optimizer ``name`` over the decay / no-decay groups of ``named_parameters``."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name](parameter_groups(named_parameters, weight_decay), lr, momentum)
