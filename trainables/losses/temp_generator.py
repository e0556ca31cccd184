"""TempGenerator: a small network mapping an embedding to a temperature (losses.md §3.4)."""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TempGenerator(nn.Module):
    """τ(x) ∈ [τ_min, τ_max] for (B, d) embeddings x (``TempGenerator`` of the iSogCLR
    repository @fcb1493, bimodal_exps/models/losses.py; losses.md §3.4)::

        z = dropout(sigmoid(W1 x + c1))          W1: d → d
        p = W2 z + c2                             W2: d → M (M prototype scores)
        a = softmax(p / √d)                       over the M prototypes
        q = dropout(sigmoid(a ⊙ p))
        τ = τ_min + (τ_max − τ_min)·sigmoid(0.2·(W3 q + c3))     W3: M → 1

    Layers use PyTorch's default ``nn.Linear`` initialisation, so τ starts near the middle of
    the range. Dropout (rate ``dropout``) is active in train mode only; §13 found it dominates
    the generator's cost in the reference (see ``_dropout``).

    Args:
        embed_dim: d, the input dimension.
        hidden_dim: M, the number of prototypes.
        tau_min, tau_max: output bounds, 0 < tau_min < tau_max.
        dropout: dropout probability in [0, 1).

    Forward: ``x`` (B, d) → τ (B,).
    """

    def __init__(
        self, embed_dim: int, hidden_dim: int, tau_min: float, tau_max: float, dropout: float
    ) -> None:
        super().__init__()
        self.embed_dim, self.hidden_dim = embed_dim, hidden_dim
        self.tau_min, self.tau_max, self.dropout = tau_min, tau_max, dropout
        self.proj = nn.Linear(embed_dim, embed_dim)
        self.prototypes = nn.Linear(embed_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.embed_dim:
            raise ValueError(
                f"TempGenerator was built for embed_dim={self.embed_dim}, got embeddings of "
                f"dim {x.shape[-1]}; pass the model's embed_dim to the loss"
            )
        z = self._dropout(torch.sigmoid(self.proj(x)))
        p = self.prototypes(z)
        a = torch.softmax(p / math.sqrt(self.embed_dim), dim=-1)
        q = self._dropout(torch.sigmoid(a * p))
        return self.tau_min + (self.tau_max - self.tau_min) * torch.sigmoid(
            0.2 * self.head(q).squeeze(-1)
        )

    def _dropout(self, x: Tensor) -> Tensor:
        """Inverted dropout (keep with probability 1 − p, scale by 1/(1 − p)) in train mode.

        On the CPU the keep mask comes from ``rand_like(x) >= p``: ``F.dropout``'s Bernoulli
        sampling there is about 3× slower and was most of the generator's cost. Elsewhere
        ``F.dropout`` (fused kernels)."""
        if not self.training or self.dropout == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.dropout, training=True)
        keep = (torch.rand_like(x) >= self.dropout).to(x.dtype).mul_(1 / (1 - self.dropout))
        return x * keep
