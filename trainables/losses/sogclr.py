"""SogCLR: the global contrastive loss with moving-average estimators (reference losses.md §3.2).

``anchor_differences``, ``GCLEstimator`` and ``weight_denominator`` are shared by the losses of the
global-contrastive (GCL) family (SogCLR, iSogCLR, AmCLR): they take h/τ already divided by the
temperature, so a per-sample τ_i plugs in unchanged.
"""

import torch
from torch import Tensor, nn

from .base import ContrastiveLoss, LossOutput, PairBatch
from .clip import anchor_similarities


def anchor_differences(sims: Tensor, offset: int = 0) -> Tensor:
    """h_ij = s_ij − s_ii for a (B, B) similarity matrix: row i = anchor i against candidate j.

    ``anchor_differences(S)`` gives the image-anchor h^I, ``anchor_differences(S.T)`` the
    text-anchor h^T (h^T_ij = s_ji − s_ii). The diagonal is 0. For the (R, N) rows of the
    local-loss form, anchor k's positive is in column ``offset + k``. Leading dimensions
    (..., R, N) are batched.
    """
    return sims - sims.diagonal(offset, dim1=-2, dim2=-1)[..., None]


def check_estimator_params(gamma: float, eps: float) -> None:
    """The moving-average rate and weight-denominator checks of the GCL family (one line)."""
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")


def weight_denominator(u: Tensor, b: Tensor, eps: float) -> Tensor:
    """u_i + ε·exp(−b_i): ε added to the unshifted moving average U_i = u_i·exp(b_i), in the
    shift's units, so that exp(z_ij − b_i) / (u_i + ε·exp(−b_i)) = exp(z_ij) / (U_i + ε) whatever
    the shift b has grown to. (ε added to the shifted u_i, as the reference code does, is
    ε·exp(b_i) in unshifted units and damps the gradient once b grows.) Floored at the smallest
    normal float: where it underflows, so does every numerator exp(z_ij − b_i) of the row, and
    the weight is 0 instead of 0/0.
    """
    return (u + eps * torch.exp(-b)).clamp_min_(torch.finfo(u.dtype).tiny)


class GCLEstimator(nn.Module):
    """Per-sample moving average u_i·exp(b_i) ≈ E_j exp(h_ij/τ) for one anchor modality.

    Buffers (length ``num_samples``, indexed by dataset index): ``u`` (the moving average, in
    units of the shift) and ``b`` (the overflow shift). Both start at 0. Starting b at 0 is the
    same as starting it at −∞: the shift update takes the maximum over every j including the
    positive, whose h_ii/τ = 0, so b ≥ 0 after any update, and exp(b_old − b_new) ≤ 1 is finite.
    u starts at 0, so the rescale of a never-seen sample multiplies 0.

    ``update`` (no grad) for the anchors i of a batch, given z_ij = h_ij/τ of shape (B, B)::

        b_i ← max(b_i, max_j z_ij)                                 (new shift first, so that
        g_i  = (1/(B−1)) Σ_{j∈J_i} exp(z_ij − b_i)                  g and u share its units)
        u_i ← (1−γ)·u_i·exp(b_i_old − b_i) + γ·g_i
        w_ij = exp(z_ij − b_i) / (u_i + ε·exp(−b_i))   for j ≠ i,   w_ii = 0

    and returns w (B, B) (ε: :func:`weight_denominator`). For the (R, N) rows of the local-loss
    form, ``offset`` is the column of the first anchor's positive (sums run over the N columns).
    J_i = {j ≠ i} (the negatives) by default; with ``negatives_only=False`` J_i also holds the
    positive j = i, whose term is exp(−b_i), as iSogCLR's own code has it. ``log_mean`` returns
    log u_i + b_i, the log of the unshifted estimate.

    With ``directions=k`` the buffers have shape (k, num_samples), one row per anchor direction
    (e.g. image and text anchors), and ``update`` takes z of shape (k, B, B) and returns w of
    that shape: k independent estimators updated by one set of tensor operations.
    """

    u: Tensor
    b: Tensor

    def __init__(
        self,
        num_samples: int,
        eps: float,
        directions: int | None = None,
        *,
        negatives_only: bool = True,
    ) -> None:
        super().__init__()
        self.eps = eps
        self.negatives_only = negatives_only
        shape = (num_samples,) if directions is None else (directions, num_samples)
        self.register_buffer("u", torch.zeros(shape))
        self.register_buffer("b", torch.zeros(shape))

    @torch.no_grad()
    def update(self, scaled_diffs: Tensor, index: Tensor, gamma: float, offset: int = 0) -> Tensor:
        scaled_diffs = scaled_diffs.to(self.u.dtype)
        batch_size = scaled_diffs.shape[-1]
        b_old = self.b[..., index]
        b_new = torch.maximum(b_old, scaled_diffs.amax(dim=-1))
        exp_diffs = torch.exp(scaled_diffs - b_new[..., None])
        positives = exp_diffs.diagonal(offset, dim1=-2, dim2=-1)
        if self.negatives_only:
            positives.zero_()
            g = exp_diffs.sum(dim=-1) / (batch_size - 1)
        else:  # the positive's exp(0 − b_i) joins g; its weight multiplies h_ii = 0 anyway
            g = exp_diffs.sum(dim=-1) / (batch_size - 1)
            positives.zero_()
        u_new = (1 - gamma) * self.u[..., index] * torch.exp(b_old - b_new) + gamma * g
        self.u.index_copy_(-1, index, u_new)
        self.b.index_copy_(-1, index, b_new)
        return exp_diffs.div_(weight_denominator(u_new, b_new, self.eps)[..., None])

    def log_mean(self, index: Tensor) -> Tensor:
        """log u_i + b_i for ``index`` (B,); u is floored at the smallest normal float, so an
        underflowed u gives a finite (upper-bound) value instead of −∞."""
        u = self.u[..., index].clamp_min(torch.finfo(self.u.dtype).tiny)
        return torch.log(u) + self.b[..., index]


class SogCLRLoss(ContrastiveLoss):
    """SogCLR (Yuan et al., ICML 2022) as the AmCLR repository's ``SogCLR_Loss`` (@802054a,
    src/models/losses.py; the course code): negatives only, u_i = g_i in epoch 0.

    Optimises the τ-scaled global contrastive loss over the dataset of n pairs::

        F = (1/n) Σ_i [ τ log E_{j≠i} exp(h^I_ij/τ) + τ log E_{j≠i} exp(h^T_ij/τ) ]

    with h^I_ij = s_ij − s_ii (image anchor i, row of S) and h^T_ij = s_ji − s_ii (text anchor i,
    column of S), S = image_emb @ text_embᵀ (B, B). Each direction keeps a ``GCLEstimator``
    (buffers ``image_state.u``, ``image_state.b``, ``text_state.u``, ``text_state.b``, each of
    length ``num_samples``); in epoch 0, γ is treated as 1 (u_i = g_i). With the detached
    weights w of the estimators the surrogate::

        L = (1/B) Σ_i (1/(B−1)) Σ_{j≠i} w^I_ij h^I_ij + (1/B) Σ_i (1/(B−1)) Σ_{j≠i} w^T_ij h^T_ij

    has the SogCLR gradient (1/u_i)·E_j[exp(h_ij/τ − b_i) ∇h_ij] per anchor and direction, but
    its value is ≈ 0. The reported ``objective`` is therefore the estimate of F on the batch
    anchors from the updated estimators: (1/B) Σ_i τ(log u^I_i + b^I_i) + τ(log u^T_i + b^T_i).

    ε: the reference adds ε = 1e-8 to the *shifted* mean u_i, which is ε·exp(b_i) in unshifted
    units and damps the gradient once b grows; here the same ε is added to the unshifted mean
    (``weight_denominator``): w_ij = exp(h_ij/τ)/(U_i + ε) whatever b is. With ε = 0 both agree.

    Args:
        num_samples: dataset size n (length of the state buffers; ``index`` < n).
        temperature: τ > 0.
        gamma: moving-average rate γ ∈ (0, 1] from epoch 1 on.
        eps: ε ≥ 0 added to the unshifted moving average in the weight denominator.

    Returns ``loss`` (L), ``objective`` (detached) and the detached surrogate terms
    ``image_to_text`` (image anchors) and ``text_to_image`` (text anchors); updates the buffers
    of the batch's indices. Augmented views are unused. Local-loss form (:mod:`.base`): the
    means over i run over this process's anchors, the sums over j over all N columns.
    """

    name = "sogclr"
    min_batch = 2

    def __init__(
        self,
        *,
        num_samples: int,
        temperature: float = 0.01,
        gamma: float = 0.8,
        eps: float = 1e-8,
    ) -> None:
        super().__init__(num_samples)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        check_estimator_params(gamma, eps)
        self.temperature = temperature
        self.gamma = gamma
        self.image_state = GCLEstimator(num_samples, eps)
        self.text_state = GCLEstimator(num_samples, eps)

    def compute(self, batch: PairBatch) -> LossOutput:
        image_sims, text_sims = anchor_similarities(batch)
        gamma = 1.0 if batch.epoch == 0 else self.gamma
        offset = batch.anchor_rows.start
        index = batch.index[batch.anchor_rows]
        image_to_text = self._surrogate(image_sims, self.image_state, index, gamma, offset)
        text_to_image = self._surrogate(text_sims, self.text_state, index, gamma, offset)
        objective = self.temperature * (
            self.image_state.log_mean(index).mean() + self.text_state.log_mean(index).mean()
        )
        return LossOutput(
            loss=image_to_text + text_to_image,
            objective=objective.detach(),
            terms={
                "image_to_text": image_to_text.detach(),
                "text_to_image": text_to_image.detach(),
            },
        )

    def _surrogate(
        self, sims: Tensor, estimator: GCLEstimator, index: Tensor, gamma: float, offset: int
    ) -> Tensor:
        """(1/R) Σ_i (1/(N−1)) Σ_j w_ij h_ij for the (R, N) similarity rows ``sims`` of the
        anchors ``index`` (R = N in the full-matrix form)."""
        diffs = anchor_differences(sims, offset)
        weights = estimator.update(diffs.detach() / self.temperature, index, gamma, offset)
        return (weights * diffs).sum(dim=1).mean() / (diffs.shape[1] - 1)
