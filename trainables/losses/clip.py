"""CLIP: symmetric InfoNCE with a fixed temperature (reference losses.md §3.1)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def similarity_matrix(image_emb: Tensor, text_emb: Tensor) -> Tensor:
    """Cosine similarities s_ij = <e_i, f_j> of L2-normalised (B, d) embeddings, shape (B, B).

    Row i holds image i scored against every text; column j holds text j against every image.
    """
    return image_emb @ text_emb.T


class CLIPLoss(nn.Module):
    """Symmetric InfoNCE (Radford et al. 2021; Ref ``CLIP_Loss``), fixed temperature τ.

    With S = image_emb @ text_embᵀ, shape (B, B), and logits S/τ::

        L_I→T = -(1/B) Σ_i log[ exp(s_ii/τ) / Σ_j exp(s_ij/τ) ]    (rows: image anchors)
        L_T→I = -(1/B) Σ_i log[ exp(s_ii/τ) / Σ_j exp(s_ji/τ) ]    (columns: text anchors)
        L     = ½ (L_I→T + L_T→I)

    Args:
        num_samples: dataset size (unused: CLIP keeps no per-sample state).
        temperature: τ > 0.

    Forward: ``image_emb``, ``text_emb`` (B, d) L2-normalised; ``index`` (B,) is unused, as are
    ``epoch`` and the augmented views. Returns ``loss`` = L, ``objective`` = L (detached) and the
    detached terms ``image_to_text`` = L_I→T, ``text_to_image`` = L_T→I. The gradient scales like
    1/τ (§3.7).
    """

    def __init__(self, *, num_samples: int, temperature: float = 0.01) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

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
        logits = similarity_matrix(image_emb, text_emb) / self.temperature
        labels = torch.arange(logits.shape[0], device=logits.device)
        image_to_text = F.cross_entropy(logits, labels)
        text_to_image = F.cross_entropy(logits.T, labels)
        loss = (image_to_text + text_to_image) / 2
        return {
            "loss": loss,
            "objective": loss.detach(),
            "image_to_text": image_to_text.detach(),
            "text_to_image": text_to_image.detach(),
        }
