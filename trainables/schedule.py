"""Learning-rate schedule: linear warm-up, then cosine decay, stepped every iteration."""

from __future__ import annotations

import math

import torch


def lr_multiplier(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Factor applied to the base learning rate at optimizer step ``step`` (0-based).

    Warm-up: (step + 1) / warmup_steps for step < warmup_steps. Then
    min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2 with p = progress through the remaining
    steps in [0, 1]; p is clamped, so steps past ``total_steps`` stay at ``min_ratio``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following :func:`lr_multiplier`; its state_dict holds the step count."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: lr_multiplier(
            step, warmup_steps=warmup_steps, total_steps=total_steps, min_ratio=min_ratio
        ),
    )
