"""SogCLR: the global contrastive loss with moving-average estimators (reference losses.md §3.2).

``anchor_differences``, ``off_diagonal_mask`` and ``GCLEstimator`` are shared by the losses of the
global-contrastive family (SogCLR, iSogCLR, AmCLR): they take h/τ already divided by the
temperature, so a per-sample τ_i plugs in unchanged.
"""

import torch
from torch import Tensor, nn

from .clip import similarity_matrix


def anchor_differences(sims: Tensor) -> Tensor:
    """h_ij = s_ij − s_ii for a (B, B) similarity matrix: row i = anchor i against candidate j.

    ``anchor_differences(S)`` gives the image-anchor h^I, ``anchor_differences(S.T)`` the
    text-anchor h^T (h^T_ij = s_ji − s_ii). The diagonal is 0.
    """
    return sims - sims.diagonal()[:, None]


def check_estimator_params(gamma: float, eps: float) -> None:
    """The moving-average rate and weight-denominator checks of the GCL family (one line)."""
    if not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")


def require_negatives(batch_size: int, loss_name: str) -> None:
    """ValueError unless the batch has in-batch negatives (B >= 2; the estimators divide by
    B - 1)."""
    if batch_size < 2:
        raise ValueError(f"{loss_name} needs batches of at least 2 pairs (in-batch negatives)")


def off_diagonal_mask(batch_size: int, device: torch.device) -> Tensor:
    """(B, B) bool mask, True off the diagonal: the in-batch negatives of each anchor."""
    return ~torch.eye(batch_size, dtype=torch.bool, device=device)


class GCLEstimator(nn.Module):
    """Per-sample moving average u_i·exp(b_i) ≈ E_{j≠i} exp(h_ij/τ) for one anchor modality.

    Buffers (length ``num_samples``, indexed by dataset index): ``u`` (the moving average, in
    units of the shift) and ``b`` (the overflow shift). Both start at 0. Starting b at 0 is the
    same as starting it at −∞: the shift update takes the maximum over every j including the
    positive, whose h_ii/τ = 0, so b ≥ 0 after any update, and exp(b_old − b_new) ≤ 1 is finite.
    u starts at 0, so the rescale of a never-seen sample multiplies 0.

    ``update`` (no grad) for the anchors i of a batch, given z_ij = h_ij/τ of shape (B, B)::

        b_i ← max(b_i, max_j z_ij)                                 (new shift first, so that
        g_i  = (1/(B−1)) Σ_{j≠i} exp(z_ij − b_i)                    g and u share its units)
        u_i ← (1−γ)·u_i·exp(b_i_old − b_i) + γ·g_i
        w_ij = exp(z_ij − b_i) / (u_i + ε)   for j ≠ i,   w_ii = 0

    and returns w (B, B). ``log_mean`` returns log u_i + b_i ≈ log E_{j≠i} exp(h_ij/τ).

    With ``directions=k`` the buffers have shape (k, num_samples), one row per anchor direction
    (e.g. image and text anchors), and ``update`` takes z of shape (k, B, B) and returns w of
    that shape: k independent estimators updated by one set of tensor operations.
    """

    def __init__(self, num_samples: int, eps: float, directions: int | None = None) -> None:
        super().__init__()
        self.eps = eps
        shape = (num_samples,) if directions is None else (directions, num_samples)
        self.register_buffer("u", torch.zeros(shape))
        self.register_buffer("b", torch.zeros(shape))

    @torch.no_grad()
    def update(self, scaled_diffs: Tensor, index: Tensor, gamma: float) -> Tensor:
        scaled_diffs = scaled_diffs.to(self.u.dtype)
        batch_size = scaled_diffs.shape[-1]
        b_old = self.b[..., index]
        b_new = torch.maximum(b_old, scaled_diffs.amax(dim=-1))
        exp_diffs = torch.exp(scaled_diffs - b_new[..., None])
        exp_diffs.diagonal(dim1=-2, dim2=-1).zero_()  # negatives only: j ≠ i
        g = exp_diffs.sum(dim=-1) / (batch_size - 1)
        u_new = (1 - gamma) * self.u[..., index] * torch.exp(b_old - b_new) + gamma * g
        self.u.index_copy_(-1, index, u_new)
        self.b.index_copy_(-1, index, b_new)
        return exp_diffs.div_(u_new[..., None] + self.eps)

    def log_mean(self, index: Tensor) -> Tensor:
        """log u_i + b_i for ``index`` (B,); u is floored at the smallest normal float, so an
        underflowed u gives a finite (upper-bound) value instead of −∞."""
        u = self.u[..., index].clamp_min(torch.finfo(self.u.dtype).tiny)
        return torch.log(u) + self.b[..., index]


class SogCLRLoss(nn.Module):
    """SogCLR (Yuan et al., ICML 2022; Ref ``SogCLR_Loss``, course/AmCLR variant).

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

    Args:
        num_samples: dataset size n (length of the state buffers; ``index`` < n).
        temperature: τ > 0.
        gamma: moving-average rate γ ∈ (0, 1] from epoch 1 on.
        eps: ε ≥ 0 in the weight denominator u_i + ε.

    Forward: ``image_emb``, ``text_emb`` (B, d) L2-normalised, B ≥ 2; ``index`` (B,) long,
    distinct dataset indices; ``epoch`` selects γ; augmented views are unused. Returns ``loss``
    (L), ``objective`` (detached) and the detached surrogate terms ``image_to_text`` (image
    anchors) and ``text_to_image`` (text anchors). Updates the buffers of the batch's indices.
    """

    def __init__(
        self,
        *,
        num_samples: int,
        temperature: float = 0.01,
        gamma: float = 0.8,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        check_estimator_params(gamma, eps)
        self.temperature = temperature
        self.gamma = gamma
        self.image_state = GCLEstimator(num_samples, eps)
        self.text_state = GCLEstimator(num_samples, eps)

    def forward(
        self,
        image_emb: Tensor,
        text_emb: Tensor,
        index: Tensor,
        *,
        epoch: int = 0,
        image_aug_emb: Tensor | None = None,
        text_aug_emb: Tensor | None = None,
    ) -> dict[str, Tensor]:
        require_negatives(image_emb.shape[0], "SogCLR")
        sims = similarity_matrix(image_emb, text_emb)
        gamma = 1.0 if epoch == 0 else self.gamma
        image_to_text = self._surrogate(anchor_differences(sims), self.image_state, index, gamma)
        text_to_image = self._surrogate(anchor_differences(sims.T), self.text_state, index, gamma)
        objective = self.temperature * (
            self.image_state.log_mean(index).mean() + self.text_state.log_mean(index).mean()
        )
        return {
            "loss": image_to_text + text_to_image,
            "objective": objective.detach(),
            "image_to_text": image_to_text.detach(),
            "text_to_image": text_to_image.detach(),
        }

    def _surrogate(
        self, diffs: Tensor, estimator: GCLEstimator, index: Tensor, gamma: float
    ) -> Tensor:
        """(1/B) Σ_i (1/(B−1)) Σ_j w_ij h_ij for anchor differences ``diffs`` (B, B)."""
        weights = estimator.update(diffs.detach() / self.temperature, index, gamma)
        return (weights * diffs).sum(dim=1).mean() / (diffs.shape[0] - 1)
