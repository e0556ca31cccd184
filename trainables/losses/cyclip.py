"""CyCLIP: CLIP plus in-modal and cross-modal cyclic consistency (reference losses.md §3.6, §5)."""

import torch
from torch import Tensor

from .base import ContrastiveLoss, LossOutput, PairBatch
from .clip import anchor_cross_entropy, anchor_similarities


class _GramDifferenceNorm(torch.autograd.Function):
    """‖E_R Eᵀ − F_R Fᵀ‖²_F of (N, d) E and F with a hand-written backward, E_R = E[rows].

    D = E_R Eᵀ − F_R Fᵀ, shape (R, N). Every row (R = N): D is symmetric and the gradient is
    ∂/∂E = 4 D E, ∂/∂F = −4 D F, two products where autograd would differentiate both factors
    of each Gram matrix separately (four). Some rows: ∂/∂E = 2 Dᵀ E_R plus 2 D E on the rows
    (and −… for F). No double backward.
    """

    @staticmethod
    def forward(ctx, image_emb: Tensor, text_emb: Tensor, rows: slice) -> Tensor:
        difference = torch.addmm(
            image_emb[rows] @ image_emb.T, text_emb[rows], text_emb.T, alpha=-1
        )
        ctx.save_for_backward(difference, image_emb, text_emb)
        ctx.rows = rows
        return difference.square().sum()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        difference, image_emb, text_emb = ctx.saved_tensors
        rows = ctx.rows
        if difference.shape[0] == difference.shape[1]:
            weighted = (4 * grad) * difference
            return weighted @ image_emb, -(weighted @ text_emb), None
        weighted = (2 * grad) * difference
        image_grad = weighted.T @ image_emb[rows]
        text_grad = weighted.T @ text_emb[rows]
        image_grad[rows] += weighted @ image_emb
        text_grad[rows] += weighted @ text_emb
        return image_grad, -text_grad, None


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

    Local-loss form (:mod:`.base`): the anchors j of this process's rows against all k, each
    mean (1/B) over j taken over those R anchors: L_in = (1/R) ‖E_R Eᵀ − F_R Fᵀ‖²_F and
    L_cross = (1/R) ‖S_R − (Sᵀ)_R‖²_F; the mean over the W processes is L.

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
        image_sims, text_sims = anchor_similarities(batch)  # S_R and (Sᵀ)_R, (R, N)
        image_logits = image_sims / self.temperature
        text_logits = image_logits.T if batch.all_rows else text_sims / self.temperature
        image_to_text, text_to_image = anchor_cross_entropy(batch, image_logits, text_logits)
        clip = (image_to_text + text_to_image) / 2
        rows = batch.anchor_rows
        anchors = rows.stop - rows.start
        in_modal = _GramDifferenceNorm.apply(batch.image, batch.text, rows) / anchors
        cross_modal = (image_sims - text_sims).square().sum() / anchors
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
