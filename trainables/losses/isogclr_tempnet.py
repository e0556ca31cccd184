"""iSogCLR with TempGenerators: temperatures predicted from the embeddings (losses.md §3.4)."""

import torch

from .base import ContrastiveLoss, LossOutput, PairBatch
from .clip import anchor_similarities
from .isogclr import check_common, rgcl_output, rgcl_step, surrogate_loss
from .sogclr import GCLEstimator
from .temp_generator import TempGenerator


class ISogCLRTempNetLoss(ContrastiveLoss):
    """iSogCLR whose temperatures come from two ``TempGenerator`` networks: the course code's
    ``iSogCLR_New_Loss`` with ``use_temp_net=True`` (iSogCLR repository @fcb1493 and AmCLR
    repository @802054a; the course report's "Modified iSogCLR").

    τ_i = TempGenerator_I(sg(e_i)) and τ'_i = TempGenerator_T(sg(f_i)), both in
    [tau_min, tau_max]. The estimators (u, b per direction, as in SogCLR; γ = 1 in epoch 0) and
    the τ-gradients G_i, G'_i are those of ``isogclr`` (``rgcl_step``) with these τ, unclipped.
    The loss to backpropagate is::

        loss = SogCLR surrogate with weights w(sg(τ))  +  mean_i sg(G_i)·τ_i + mean_i sg(G'_i)·τ'_i

    The first term sees τ only through the detached weights, so the embeddings receive the
    SogCLR-with-per-sample-τ gradient; the second reaches only the generators (their inputs are
    detached), giving them the RGCL τ-gradient by the chain rule. ε is added to the unshifted
    moving average (``weight_denominator``); the reference floors the shifted sum at 1e-14 instead,
    which damps the gradient once b grows; with ε = 0 both agree.

    ``objective`` (reported as train_loss) is the RGCL estimate as in ``isogclr``:
    (1/B) Σ_i [τ_i(log u^I_i + b^I_i + ρ) + τ'_i(log u^T_i + b^T_i + ρ)] with this batch's
    τ (detached). Detached terms: ``image_to_text``, ``text_to_image`` (its two halves),
    ``tau_image``, ``tau_text`` (mean predicted τ). The generators run in train mode (dropout
    on) unless the loss module is put in eval mode.

    State (``state_dict``): ``state.u``, ``state.b`` of shape (2, ``num_samples``) (row 0: image
    anchors, row 1: text anchors) and the parameters ``image_generator.*``,
    ``text_generator.*``.

    Args:
        num_samples: dataset size n.
        tau_min, tau_max: bounds of the predicted τ, 0 < tau_min < tau_max.
        rho: ρ ≥ 0 (KL budget).
        gamma: moving-average rate γ ∈ (0, 1] from epoch 1 on.
        eps: ε ≥ 0 added to the unshifted moving average in the weight denominator.
        embed_dim: d of the embeddings (must equal the model's embed_dim).
        hidden_dim: M, prototypes of each generator.
        dropout: generator dropout probability in [0, 1).
        tempnet_lr_mult: > 0, the generators' learning rate is lr × tempnet_lr_mult.
        tempnet_weight_decay: ≥ 0, the generators' weight decay (named apart from the
            model's ``weight_decay``, which a trial config sets).

    Local-loss form (:mod:`.base`): as ``isogclr``'s, the mean of the τ term over this
    process's anchors too. The generators run on all N rows (τ is then sliced), so that with
    dropout every process draws the masks one process would: the local form stays exact.

    ``optimizer_groups(lr)`` returns the single parameter group of both generators.
    """

    name = "isogclr_tempnet"
    min_batch = 2

    def __init__(
        self,
        *,
        num_samples: int,
        tau_min: float = 0.005,
        tau_max: float = 0.05,
        rho: float = 8.0,
        gamma: float = 0.8,
        eps: float = 1e-14,
        embed_dim: int = 256,
        hidden_dim: int = 256,
        dropout: float = 0.5,
        tempnet_lr_mult: float = 0.1,
        tempnet_weight_decay: float = 1e-3,
    ) -> None:
        super().__init__(num_samples)
        check_common(tau_min, tau_max, rho, gamma, eps)
        embed_dim, hidden_dim = (
            _positive_int("embed_dim", embed_dim),
            _positive_int("hidden_dim", hidden_dim),
        )
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if tempnet_lr_mult <= 0:
            raise ValueError(f"tempnet_lr_mult must be > 0, got {tempnet_lr_mult}")
        if tempnet_weight_decay < 0:
            raise ValueError(f"tempnet_weight_decay must be >= 0, got {tempnet_weight_decay}")
        self.tau_min, self.tau_max, self.rho, self.gamma = tau_min, tau_max, rho, gamma
        self.lr_mult, self.weight_decay = tempnet_lr_mult, tempnet_weight_decay
        self.state = GCLEstimator(num_samples, eps, directions=2)
        self.image_generator = TempGenerator(embed_dim, hidden_dim, tau_min, tau_max, dropout)
        self.text_generator = TempGenerator(embed_dim, hidden_dim, tau_min, tau_max, dropout)

    def optimizer_groups(self, lr: float) -> list[dict]:
        """One group with every generator parameter: lr × tempnet_lr_mult, their own decay."""
        params = [*self.image_generator.parameters(), *self.text_generator.parameters()]
        return [{"params": params, "lr": lr * self.lr_mult, "weight_decay": self.weight_decay}]

    def compute(self, batch: PairBatch) -> LossOutput:
        sims = anchor_similarities(batch)
        rows = batch.anchor_rows
        # (2, R): τ of image anchors, τ' of text anchors; grad reaches the generators only. The
        # generators see all N rows, so their dropout masks are those of one process
        tau = torch.stack(
            [self.image_generator(batch.image.detach()), self.text_generator(batch.text.detach())]
        )[:, rows]
        gamma = 1.0 if batch.epoch == 0 else self.gamma
        step = rgcl_step(
            sims, tau, self.state, batch.index[rows], gamma=gamma, rho=self.rho, offset=rows.start
        )
        # mean_i sg(G_i)·τ_i + mean_i sg(G'_i)·τ'_i
        temperature_term = (step.grad * tau).sum() / tau.shape[1]
        loss = surrogate_loss(sims, step.coeff) + temperature_term
        return rgcl_output(loss, tau, step.log_mean, self.rho)


def _positive_int(name: str, value: float) -> int:
    if value != int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)
