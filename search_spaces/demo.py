"""The ``demo`` space: CLIP vs SogCLR, AdamW vs SGD-Nesterov, learning rate, decay, temperature.

SGD-type optimizers get a wider and higher learning-rate range: the SogCLR surrogate has
tau-scaled gradients (no 1/tau factor), so the same lr is not comparable across losses for SGD
(reference/losses.md §3.7), while Adam-type updates are scale-invariant.
"""

from __future__ import annotations

from search_spaces.knobs import Knobs

LR_RANGES = {
    "adamw": (1e-4, 1e-2),
    "sgd_nesterov": (1e-3, 3.0),
}


def demo_space(knobs: Knobs) -> None:
    """loss in {clip, sogclr}; optimizer in {adamw, sgd_nesterov}; lr (log, range per
    optimizer); weight_decay (log); temperature (log); gamma for sogclr."""
    loss, optimizer = knobs.cell(("clip", "sogclr"), tuple(LR_RANGES))
    knobs.log_float("lr", *LR_RANGES[optimizer])
    knobs.log_float("weight_decay", 1e-4, 0.3)
    knobs.log_float("temperature", 0.01, 0.2)
    if loss == "sogclr":
        knobs.float("gamma", 0.1, 1.0)
