"""Mixed precision for a trial: the towers run under autocast, everything else in float32.

``trial.precision`` = ``fp32`` (no autocast), ``bf16`` or ``fp16`` (autocast to that dtype on
the trial's device; fp16 also scales the loss with a ``GradScaler`` so small gradients do not
flush to zero). Parameters, optimizer state, the loss math and the loss's per-sample state
stay float32: ``ContrastiveLoss`` promotes half-precision embeddings to float32 before it
computes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
from torch import Tensor

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class MixedPrecision:
    """Autocast for the forward pass and the (scaled) backward + optimizer step."""

    def __init__(self, precision: str, device: torch.device) -> None:
        if precision not in PRECISIONS:
            raise ValueError(
                f"trial.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
            )
        self.dtype = PRECISIONS[precision]
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def autocast(self) -> AbstractContextManager:
        """The context in which the towers run."""
        return torch.autocast(
            self.device_type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        )

    def step(
        self,
        loss: Tensor,
        optimizer: torch.optim.Optimizer,
        reduce_gradients: Callable[[], None] | None = None,
    ) -> None:
        """Backward of ``loss`` and one optimizer step (scaled and unscaled for fp16; a step
        with inf/NaN gradients is skipped and the scale lowered). ``reduce_gradients`` runs
        between the two (a data-parallel trial averages the gradients over its ranks there)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if reduce_gradients is not None:
            reduce_gradients()
        self.scaler.step(optimizer)
        self.scaler.update()
