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


class UnshiftedMean:
    """The moving averages U_k ≈ E_j exp(z_kj) of the GCL losses, unshifted (no b, no overflow
    guard; fine in float64 for |z| < 700): U ← (1−γ)·U + γ·g for the batch estimate g, U = 0
    before the first update. Weights are exp(z)/(U + ε)."""

    def __init__(self) -> None:
        self.value: dict = {}

    def update(self, key, g: float, gamma: float) -> float:
        self.value[key] = (1 - gamma) * self.value.get(key, 0.0) + gamma * g
        return self.value[key]


def assert_same_output(expected, actual) -> None:
    """Two LossOutputs are bit-identical: loss, objective and every term."""
    assert torch.equal(expected.loss, actual.loss)
    assert torch.equal(expected.objective, actual.objective)
    assert expected.terms.keys() == actual.terms.keys()
    assert all(torch.equal(expected.terms[k], actual.terms[k]) for k in expected.terms)


def growing_shift_batch(step: int, batch: int = 4, dim: int = 6):
    """(image, text) float64 unit rows for a schedule in which ε matters at τ = 0.01.

    Step 0 is unaligned (texts point away from their images, so negatives beat positives by
    up to ≈ 1 and the shift b grows to ≈ 100τ-units); later steps are aligned: text_i =
    c_i·e_i + √(1 − c_i²)·v with v orthogonal to the images, so every negative trails its
    positive by about c_i ∈ [0.14, 0.26] and the unshifted mean exp(h/τ) is 1e-6…1e-12, of the
    order of ε = 1e-8.
    """
    basis, _ = torch.linalg.qr(unit_rows(dim, dim, seed=400 + step).T)
    image = basis.T[:batch]
    if step == 0:
        noise = unit_rows(batch, dim, seed=500)
        return image, F.normalize(-0.3 * image + noise, dim=-1)
    image = F.normalize(image + 0.03 * unit_rows(batch, dim, seed=600 + step), dim=-1)
    margins = torch.linspace(0.14, 0.26, batch, dtype=torch.float64)[:, None]
    orthogonal = basis.T[batch]
    return image, margins * basis.T[:batch] + (1 - margins**2).sqrt() * orthogonal


GROWING_SHIFT = [(0, [0, 1, 2, 3]), (0, [3, 1, 0, 2]), (1, [1, 2, 3, 0]), (1, [2, 3, 1, 0])]
