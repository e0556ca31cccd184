"""CyCLIP: CLIP plus in-modal and cross-modal cyclic consistency (reference losses.md §3.6, §5)."""

import torch
from torch import Tensor

from .base import ContrastiveLoss, LossOutput, PairBatch
from .clip import similarity_matrix, symmetric_cross_entropy


class _GramDifferenceNorm(torch.autograd.Function):
    """‖E Eᵀ − F Fᵀ‖²_F of (B, d) E and F with a hand-written backward.

    D = E Eᵀ − F Fᵀ (B, B) is symmetric, so the gradient is ∂/∂E = 4 D E and ∂/∂F = −4 D F:
    two products, where autograd would differentiate both factors of each Gram matrix
    separately (four). No double backward.
    """

    @staticmethod
    def forward(ctx, image_emb: Tensor, text_emb: Tensor) -> Tensor:
        difference = torch.addmm(image_emb @ image_emb.T, text_emb, text_emb.T, alpha=-1)
        ctx.save_for_backward(difference, image_emb, text_emb)
        return difference.square().sum()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor]:
        difference, image_emb, text_emb = ctx.saved_tensors
        weighted = (4 * grad) * difference
        return weighted @ image_emb, -(weighted @ text_emb)


class CyCLIPLoss(ContrastiveLoss):
    """CyCLIP (Goel et al., NeurIPS 2022; Ref ``CyCLIP_Loss``), fixed temperature τ.

    With image embeddings e_j and text embeddings f_j (rows of ``image_emb``, ``text_emb``,
    shape (B, d)), S = image_emb @ text_embᵀ (B, B), s_jk = <e_j, f_k>::

        L_CLIP  = ½ (CE(rows of S/τ) + CE(columns of S/τ))                 (as ``clip``)
        L_in    = (1/B) Σ_{j,k} (<e_j, e_k> − <f_j, f_k>)²  = (1/B) ‖E Eᵀ − F Fᵀ‖²_F
        L_cross = (1/B) Σ_{j,k} (<e_j, f_k> − <e_k, f_j>)²  = (1/B) ‖S − Sᵀ‖²_F
        L       = L_CLIP + λ_in·L_in + λ_cross·L_cross

    (the reference code computes the same on τ-scaled logits and rescales by τ²·B). The in-modal
    term aligns the geometry of the image space with that of the text space; the cross-modal term
    makes S symmetric. Both are 0 when image and text embeddings coincide.

    Args:
        num_samples: dataset size (unused: no per-sample state).
        temperature: τ > 0 of the CLIP term.
        lambda_in: λ_in ≥ 0 (paper and Ref: 0.25).
        lambda_cross: λ_cross ≥ 0 (paper and Ref: 0.25).

    ``index``, ``epoch`` and the augmented views are unused. Returns ``loss`` = L, ``objective`` = L
    (detached) and the detached terms ``clip`` = L_CLIP, ``in_modal`` = L_in and ``cross_modal`` =
    L_cross (unweighted).
    """

    name = "cyclip"

    def __init__(
        self,
        *,
        num_samples: int,
        temperature: float = 0.01,
        lambda_in: float = 0.25,
        lambda_cross: float = 0.25,
    ) -> None:
        super().__init__(num_samples)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if lambda_in < 0 or lambda_cross < 0:
            raise ValueError(
                f"lambda_in and lambda_cross must be >= 0, got {lambda_in}, {lambda_cross}"
            )
        self.temperature = temperature
        self.lambda_in = lambda_in
        self.lambda_cross = lambda_cross

    def compute(self, batch: PairBatch) -> LossOutput:
        sims = similarity_matrix(batch.image, batch.text)
        image_to_text, text_to_image = symmetric_cross_entropy(sims / self.temperature)
        clip = (image_to_text + text_to_image) / 2
        in_modal = _GramDifferenceNorm.apply(batch.image, batch.text) / batch.size
        cross_modal = (sims - sims.T).square().sum() / batch.size
        loss = clip + self.lambda_in * in_modal + self.lambda_cross * cross_modal
        return LossOutput(
            loss=loss,
            objective=loss.detach(),
            terms={
                "clip": clip.detach(),
                "in_modal": in_modal.detach(),
                "cross_modal": cross_modal.detach(),
            },
        )
