"""CLIP: symmetric InfoNCE, fixed or learnable temperature (reference losses.md §3.1, §7)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import ContrastiveLoss, LossOutput, PairBatch


def similarity_matrix(image_emb: Tensor, text_emb: Tensor) -> Tensor:
    """Cosine similarities s_ij = <e_i, f_j> of L2-normalised (B, d) embeddings, shape (B, B).

    Row i holds image i scored against every text; column j holds text j against every image.
    """
    return image_emb @ text_emb.T


def anchor_similarities(
    batch: PairBatch, image_scale: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """(S_I, S_T), each (R, N): the rows of S = image @ textᵀ of the image anchors
    ``batch.anchor_rows`` and the rows of Sᵀ of the text anchors (R = N in the full-matrix
    form: one product, S and its transpose). Row k's positive is in column
    ``batch.anchor_rows.start + k``. ``image_scale`` multiplies every entry (applied to the
    (N, d) image embeddings, so its gradient is an (N, d) reduction)."""
    image = batch.image if image_scale is None else batch.image * image_scale
    if batch.all_rows:
        sims = similarity_matrix(image, batch.text)
        return sims, sims.T
    rows = batch.anchor_rows
    return similarity_matrix(image[rows], batch.text), similarity_matrix(batch.text[rows], image)


def positive_columns(batch: PairBatch) -> Tensor:
    """(R,) the column of each anchor's positive in :func:`anchor_similarities`."""
    rows = batch.anchor_rows
    return torch.arange(rows.start, rows.stop, device=batch.image.device)


def anchor_cross_entropy(
    batch: PairBatch, image_logits: Tensor, text_logits: Tensor
) -> tuple[Tensor, Tensor]:
    """(L_I→T, L_T→I): the mean cross-entropy of the (R, N) logits of the image anchors and of
    the text anchors from :func:`anchor_similarities`, positives in :func:`positive_columns`."""
    labels = positive_columns(batch)
    return F.cross_entropy(image_logits, labels), F.cross_entropy(text_logits, labels)


class _InwardClamp(torch.autograd.Function):
    """``x.clamp(low, high)`` whose gradient passes inside [low, high] and, outside, only when a
    descent step (x − lr·grad) moves x back towards the interval; it is blocked when it would
    push x further out. A parameter that an optimizer step carried past a bound therefore
    neither moves the clamped value nor gets stuck out there."""

    @staticmethod
    def forward(ctx, x: Tensor, low: float, high: float) -> Tensor:
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        return x.clamp(low, high)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        outward = ((x > ctx.high) & (grad < 0)) | ((x < ctx.low) & (grad > 0))
        return torch.where(outward, torch.zeros_like(grad), grad), None, None


class CLIPLoss(ContrastiveLoss):
    """Symmetric InfoNCE (Radford et al. 2021; Ref ``CLIP_Loss``), temperature τ.

    With S = image_emb @ text_embᵀ, shape (B, B), and logits S/τ::

        L_I→T = -(1/B) Σ_i log[ exp(s_ii/τ) / Σ_j exp(s_ij/τ) ]    (rows: image anchors)
        L_T→I = -(1/B) Σ_i log[ exp(s_ii/τ) / Σ_j exp(s_ji/τ) ]    (columns: text anchors)
        L     = ½ (L_I→T + L_T→I)

    Fixed τ by default. With ``learnable_temperature`` τ is learnt as in open_clip: the scalar
    parameter ``logit_scale`` holds log(1/τ), initialised to log(1/``temperature``), and the
    logits are S·exp(c) with c = clamp(logit_scale, log(1/τ_max), log(1/τ_min)), so τ stays in
    [``min_temperature``, ``max_temperature``]. The clamp is applied in forward (not to the
    parameter): inside the bounds it is the identity with gradient 1; outside (after an
    optimizer step overshot a bound) τ is the bound's and the gradient reaches ``logit_scale``
    only when it points back inside, so the parameter never sticks beyond a bound. Give
    ``logit_scale`` no weight decay (it is the only parameter; fixed τ has none).

    Args:
        num_samples: dataset size (unused: CLIP keeps no per-sample state).
        temperature: τ > 0 when fixed; the initial τ when learnable.
        learnable_temperature: learn τ through ``logit_scale``.
        min_temperature, max_temperature: bounds of a learnable τ, 0 < min ≤ temperature ≤ max
            (unused when τ is fixed).

    Local-loss form (:mod:`.base`): the means run over this process's anchors only.

    ``index``, ``epoch`` and the augmented views are unused. Returns ``loss`` = L, ``objective`` = L
    (detached) and the detached terms ``image_to_text`` = L_I→T, ``text_to_image`` = L_T→I and
    ``temperature`` = the τ used (after the clamp). The gradient in the embeddings scales like 1/τ
    (§3.7).
    """

    name = "clip"

    def __init__(
        self,
        *,
        num_samples: int,
        temperature: float = 0.01,
        learnable_temperature: bool = False,
        min_temperature: float = 0.001,
        max_temperature: float = 0.5,
    ) -> None:
        super().__init__(num_samples)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.learnable_temperature = learnable_temperature
        if learnable_temperature:
            if not 0 < min_temperature <= temperature <= max_temperature:
                raise ValueError(
                    "a learnable temperature needs 0 < min_temperature <= temperature <= "
                    f"max_temperature, got {min_temperature}, {temperature}, {max_temperature}"
                )
            self.min_temperature = min_temperature
            self.max_temperature = max_temperature
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)))

    def scale(self) -> Tensor:
        """exp(c) = 1/τ, with the clamp and gradient rule of the class docstring (learnable τ)."""
        bounded = _InwardClamp.apply(
            self.logit_scale, math.log(1 / self.max_temperature), math.log(1 / self.min_temperature)
        )
        return bounded.exp()

    def compute(self, batch: PairBatch) -> LossOutput:
        if self.learnable_temperature:
            scale = self.scale()
            # scaling the (B, d) image rows, not the (B, B) logits: d(loss)/d(scale) costs B·d
            image_logits, text_logits = anchor_similarities(batch, scale)
            temperature = 1 / scale.detach()
        else:
            image_sims, text_sims = anchor_similarities(batch)
            image_logits = image_sims / self.temperature
            text_logits = image_logits.T if batch.all_rows else text_sims / self.temperature
            temperature = image_logits.new_full((), self.temperature)
        image_to_text, text_to_image = anchor_cross_entropy(batch, image_logits, text_logits)
        loss = (image_to_text + text_to_image) / 2
        return LossOutput(
            loss=loss,
            objective=loss.detach(),
            terms={
                "image_to_text": image_to_text.detach(),
                "text_to_image": text_to_image.detach(),
                "temperature": temperature,
            },
        )
