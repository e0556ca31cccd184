"""SigLIP: pairwise sigmoid loss with learnable scale and bias (reference losses.md §7)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import ContrastiveLoss, LossOutput, PairBatch
from .clip import positive_columns, similarity_matrix


class SigLIPLoss(ContrastiveLoss):
    """SigLIP (Zhai et al., ICCV 2023; open_clip ``SigLipLoss``, single device).

    With S = image_emb @ text_embᵀ, shape (B, B), every pair (i, j) is an independent binary
    problem, positive on the diagonal::

        z_ij = t·s_ij + b,     t = exp(log_scale)
        y_ij = 2·[i = j] − 1   (labels 2I − 1)
        L    = −(1/B) Σ_{i,j} log σ(y_ij · z_ij)

    t and b are the learnable scalar parameters ``log_scale`` (holding log t) and ``bias``
    (SigLIP init: t = 10, b = −10, so the B² − B negatives start with a small loss). Give them no
    weight decay; they are the loss's only parameters (no per-sample state).

    Args:
        num_samples: dataset size (unused).
        init_log_scale: initial log t (log 10).
        init_bias: initial b (−10).

    Local-loss form (:mod:`.base`): the rows i of this process's anchors, L = −(1/R) Σ_{i∈rows}
    Σ_j log σ(y_ij z_ij).

    ``index``, ``epoch`` and the augmented views are unused. Returns ``loss`` = L, ``objective`` = L
    (detached) and the detached terms ``scale`` = t and ``bias`` = b.
    """

    name = "siglip"

    def __init__(
        self,
        *,
        num_samples: int,
        init_log_scale: float = math.log(10),
        init_bias: float = -10.0,
    ) -> None:
        super().__init__(num_samples)
        self.log_scale = nn.Parameter(torch.tensor(float(init_log_scale)))
        self.bias = nn.Parameter(torch.tensor(float(init_bias)))

    def compute(self, batch: PairBatch) -> LossOutput:
        scale = self.log_scale.exp()
        # t·s_ij as (t·e_i)·f_j: the gradient in t is a (B, d) reduction, not a (B, B) one
        rows = batch.anchor_rows
        logits = similarity_matrix(batch.image[rows] * scale, batch.text) + self.bias
        labels = -torch.ones_like(logits)
        labels[torch.arange(len(logits)), positive_columns(batch)] = 1
        loss = -F.logsigmoid(labels * logits).sum() / len(logits)
        return LossOutput(
            loss=loss,
            objective=loss.detach(),
            terms={
                "scale": scale.detach(),
                "bias": self.bias.detach().clone(),  # not a view: the optimizer updates b in place
            },
        )
