"""Shared pieces of the naive loss references in the tests: seeded unit vectors, fresh leaf
tensors, and dot products and CLIP written as explicit loops over the batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def unit_rows(*shape: int, seed: int) -> torch.Tensor:
    """Seeded float64 rows of unit length."""
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=torch.float64), dim=-1)


def leaves(*tensors: torch.Tensor) -> list[torch.Tensor]:
    """Detached copies that require grad."""
    return [t.detach().clone().requires_grad_() for t in tensors]


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> as an explicit sum over coordinates."""
    return sum(a[k] * b[k] for k in range(a.shape[0]))


def naive_clip(image, text, tau):
    """½ (CE over rows + CE over columns) of s_ij/τ, one anchor at a time; τ may be a tensor."""
    batch = image.shape[0]
    s = [[dot(image[i], text[j]) for j in range(batch)] for i in range(batch)]
    total = 0.0
    for i in range(batch):
        row = sum(torch.exp(s[i][j] / tau) for j in range(batch))
        col = sum(torch.exp(s[j][i] / tau) for j in range(batch))
        total = total - torch.log(torch.exp(s[i][i] / tau) / row) / 2
        total = total - torch.log(torch.exp(s[i][i] / tau) / col) / 2
    return total / batch
