"""Image–text contrastive losses behind one contract (DESIGN.md, "Contracts"; :mod:`.base`).

``build_loss(name, num_samples=n, **hparams)`` returns a :class:`ContrastiveLoss` called as
``loss_fn(image_emb, text_emb, index, *, epoch=0, image_aug_emb=None, text_aug_emb=None)`` with
L2-normalised (B, d) embeddings and the (B,) dataset indices of the pairs. It returns a
:class:`LossOutput`: ``loss`` (to backpropagate), ``objective`` (detached; reported as
``train_loss``) and detached named ``terms`` for logging. Per-sample state lives in persistent
buffers (``sample_state()``), so ``state_dict()`` checkpoints it.

A loss is registered by adding its class to ``_LOSSES`` under its ``name``. Its constructor
takes the keyword ``num_samples`` and keyword hyperparameters that all have defaults: those
defaults are the loss's default hyperparameters (``loss_defaults``).
"""

import inspect
from typing import Any

from .amclr import AmCLRLoss, XAmCLRLoss
from .base import ContrastiveLoss, FeatureGather, LossOutput, PairBatch
from .clip import CLIPLoss
from .cyclip import CyCLIPLoss
from .isogclr import ISogCLRLoss
from .isogclr_tempnet import ISogCLRTempNetLoss
from .siglip import SigLIPLoss
from .sogclr import SogCLRLoss

__all__ = [
    "LOSS_NAMES",
    "ContrastiveLoss",
    "FeatureGather",
    "LossOutput",
    "PairBatch",
    "build_loss",
    "loss_defaults",
]

_LOSSES: dict[str, type[ContrastiveLoss]] = {
    cls.name: cls
    for cls in (
        CLIPLoss,
        SogCLRLoss,
        CyCLIPLoss,
        ISogCLRLoss,
        ISogCLRTempNetLoss,
        SigLIPLoss,
        AmCLRLoss,
        XAmCLRLoss,
    )
}
LOSS_NAMES: tuple[str, ...] = tuple(_LOSSES)


def loss_defaults(name: str) -> dict[str, Any]:
    """Default hyperparameters of loss ``name``, e.g. ``{"temperature": 0.01}`` for ``clip``."""
    parameters = inspect.signature(_loss_class(name)).parameters
    return {key: p.default for key, p in parameters.items() if key != "num_samples"}


def build_loss(name: str, *, num_samples: int, **hparams: Any) -> ContrastiveLoss:
    """Build loss ``name`` for a dataset of ``num_samples`` pairs, overriding its defaults.

    Raises:
        ValueError: ``name`` is not registered, or a hyperparameter is not one of the loss's.
    """
    loss_class = _loss_class(name)
    valid = loss_defaults(name)
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {', '.join(unknown)} for loss {name!r}; "
            f"valid: {', '.join(valid)}"
        )
    return loss_class(num_samples=num_samples, **hparams)


def _loss_class(name: str) -> type[ContrastiveLoss]:
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {', '.join(LOSS_NAMES)}")
    return _LOSSES[name]
