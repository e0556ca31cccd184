"""The ``seeds`` space: every loss and optimizer the seed documents compare, with their knobs.

Learning-rate ranges are per optimizer family and span several decades for SGD-type
optimizers: CLIP's cross-entropy gradients scale like 1/tau while the SogCLR-family
surrogates are tau-scaled, so SGD's good lr moves by orders of magnitude between losses
(reference/losses.md §3.7); Adam-type updates are scale-invariant. Lion's are sign updates,
so its authors advise an lr 3-10x smaller and a weight decay 3-10x larger than AdamW's:
Lion's ranges are AdamW's scaled so (each step decays weights by lr * wd, which the larger
decay keeps comparable to AdamW's).

Every optimizer gets one knob of its own besides lr and weight decay, the horizon of its
gradient averaging, searched as ``optimizer_<knob>`` (trainables/config.py): SGD momentum
(reference 0.9), the Adam-type beta2 (0.999 by default, 0.98 in CLIP; with small batches the
second moment is noisy and a longer average can matter) and Lion's beta2 (0.99 by default;
its authors lower it to 0.98-0.95 for stability).

Temperature bounds are ordered by construction: tau_max is drawn above 2 * tau_min, and
iSogCLR's tau_init between the two.
"""

from __future__ import annotations

from search_spaces.knobs import Knobs

LOSSES = ("clip", "sogclr", "isogclr", "isogclr_tempnet", "cyclip", "amclr", "xamclr", "siglip")
ADAMW_LR = (1e-5, 1e-2)
WEIGHT_DECAY = (1e-4, 0.3)
LION_LR = (ADAMW_LR[0] / 10, ADAMW_LR[1] / 3)  # 3-10x smaller than AdamW's
LION_WEIGHT_DECAY = (WEIGHT_DECAY[0] * 3, WEIGHT_DECAY[1] * 10)  # 3-10x larger than AdamW's
LR_RANGES = {
    "sgd_nesterov": (1e-3, 3.0),
    "sgdp": (1e-3, 3.0),
    "adamw": ADAMW_LR,
    "adamp": ADAMW_LR,
    "radam": ADAMW_LR,
    "lamb": (1e-4, 3e-2),
    "lion": LION_LR,
}
WEIGHT_DECAY_RANGES = {name: WEIGHT_DECAY for name in LR_RANGES} | {"lion": LION_WEIGHT_DECAY}
MOMENTUM = {"optimizer_momentum": (0.8, 0.99)}
ADAM_BETA2 = {"optimizer_beta2": (0.95, 0.999)}
OPTIMIZER_KNOBS = {  # optimizer -> its searched knobs (uniform ranges)
    "sgd_nesterov": MOMENTUM,
    "sgdp": MOMENTUM,
    "adamw": ADAM_BETA2,
    "adamp": ADAM_BETA2,
    "radam": ADAM_BETA2,
    "lamb": ADAM_BETA2,
    "lion": {"optimizer_beta2": (0.95, 0.995)},
}
FIXED_TEMPERATURE = ("clip", "cyclip", "sogclr", "amclr", "xamclr")
MOVING_AVERAGE = ("sogclr", "isogclr", "isogclr_tempnet", "amclr", "xamclr")


def _temperature_bounds(knobs: Knobs) -> tuple[float, float]:
    tau_min = knobs.log_float("tau_min", 1e-3, 0.02)
    tau_max = knobs.log_float("tau_max", 2 * tau_min, 0.5)
    return tau_min, tau_max


def _augmentation_weights(knobs: Knobs, loss: str) -> None:
    for name in ("weight_image_aug", "weight_text_aug", "weight_both_aug"):
        knobs.float(name, 0.0, 1.5)
    if loss == "xamclr":
        knobs.float("weight_intra_image", 0.0, 1.5)
        knobs.float("weight_intra_text", 0.0, 1.5)
    knobs.choice("shared_u", (False, True))


def seeds_space(knobs: Knobs) -> None:
    """(loss, optimizer) cell; lr and weight_decay (log, ranges per optimizer); the
    optimizer's momentum or beta2; then the loss's own knobs: temperature (fixed-temperature
    losses; learnable for CLIP optionally), gamma (moving-average losses), tau_min < tau_max,
    tau_init, rho, eta (iSogCLR), the TempGenerator learning-rate multiplier, the CyCLIP
    lambdas, the AmCLR/xAmCLR view weights."""
    loss, optimizer = knobs.cell(LOSSES, tuple(LR_RANGES))
    knobs.log_float("lr", *LR_RANGES[optimizer])
    knobs.log_float("weight_decay", *WEIGHT_DECAY_RANGES[optimizer])
    for name, (low, high) in OPTIMIZER_KNOBS[optimizer].items():
        knobs.float(name, low, high)
    if loss in FIXED_TEMPERATURE:
        knobs.log_float("temperature", 0.005, 0.2)
    if loss == "clip":
        knobs.choice("learnable_temperature", (False, True))
    if loss in MOVING_AVERAGE:
        knobs.float("gamma", 0.1, 1.0)
    if loss == "cyclip":
        knobs.float("lambda_in", 0.0, 1.0)
        knobs.float("lambda_cross", 0.0, 1.0)
    if loss in ("isogclr", "isogclr_tempnet"):
        tau_min, tau_max = _temperature_bounds(knobs)
        knobs.float("rho", 2.0, 10.0)
    if loss == "isogclr":
        knobs.log_float("tau_init", tau_min, tau_max)
        knobs.log_float("eta", 1e-4, 0.1)
    if loss == "isogclr_tempnet":
        knobs.log_float("tempnet_lr_mult", 0.01, 1.0)
    if loss in ("amclr", "xamclr"):
        _augmentation_weights(knobs, loss)
