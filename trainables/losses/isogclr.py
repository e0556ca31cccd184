"""iSogCLR: the robust global contrastive loss with per-sample temperatures (losses.md §3.3).

``rgcl_step`` is the shared no-grad step of the RGCL family (``isogclr`` here and
``isogclr_tempnet``): the SogCLR estimators (``GCLEstimator``) of both directions evaluated with
one temperature per anchor, the τ-gradients G of the RGCL objective, and the coefficient matrix
whose inner product with S has the gradient of both SogCLR surrogates.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from .base import ContrastiveLoss, LossOutput, PairBatch
from .clip import anchor_similarities
from .sogclr import GCLEstimator, anchor_differences, check_estimator_params


@dataclass(frozen=True)
class RGCLStep:
    """Detached results of :func:`rgcl_step` for a batch of R anchors against N columns; row 0
    of every (2, …) tensor is the image-anchor direction, row 1 the text-anchor direction.

    ``coeff`` (2, R, N): Σ_kij coeff_kij·S_k,ij / (R(N−1)) over the anchors' similarity rows
    S_k equals the two SogCLR surrogates (1/R) Σ_i (1/(N−1)) Σ_{j≠i} (w^I_ij h^I_ij +
    w^T_ij h^T_ij) and has their gradient in S (:func:`surrogate_loss`).
    ``grad`` (2, R): the τ-gradients G_i (image anchors), G'_i (text anchors), unclipped.
    ``log_mean`` (2, R): log u_i + b_i of the updated estimators.
    """

    coeff: Tensor
    grad: Tensor
    log_mean: Tensor


@torch.no_grad()
def rgcl_step(
    sims: tuple[Tensor, Tensor],
    tau: Tensor,
    state: GCLEstimator,
    index: Tensor,
    *,
    gamma: float,
    rho: float,
    offset: int = 0,
) -> RGCLStep:
    """Update the two-direction estimator ``state`` for the anchors ``index``, per-anchor τ.

    ``sims`` = (S_I, S_T), each (R, N), from ``anchor_similarities`` (detached here): the rows
    of S of the R image anchors and the rows of Sᵀ of the R text anchors, anchor k's positive
    in column ``offset + k`` (every row: S and Sᵀ, R = N). ``tau`` (2, R) holds τ_i of image
    anchor i in row 0 and τ'_i of text anchor i in row 1; ``state`` is a ``GCLEstimator`` with
    ``directions=2`` in the same order. Per direction, with z_ij = h_ij/τ_i: b, u and w as in
    ``GCLEstimator.update`` (γ as given), then::

        G_i = log u_i + b_i + ρ − (1/(N−1)) Σ_{j≠i} w_ij z_ij

    the derivative in τ_i of τ_i·log E_{j≠i} exp(h_ij/τ_i) + τ_i·ρ at the estimate.
    """
    stacked = torch.stack([s.detach().to(state.u.dtype) for s in sims])  # (2, R, N)
    scaled = anchor_differences(stacked, offset).div_(tau.detach().to(stacked.dtype)[..., None])
    weights = state.update(scaled, index, gamma, offset)
    log_mean = state.log_mean(index)
    grad = log_mean + rho - (weights * scaled).sum(dim=-1) / (stacked.shape[-1] - 1)
    # h_ij = s_ij − s_i,p(i) (p(i) = offset + i, the positive): s_ij (j ≠ p(i)) carries w_ij,
    # the positive −Σ_j w_ij (w is 0 there)
    coeff = weights
    coeff.diagonal(offset, dim1=-2, dim2=-1).sub_(weights.sum(dim=-1))
    return RGCLStep(coeff, grad, log_mean)


def surrogate_loss(sims: tuple[Tensor, Tensor], coeff: Tensor) -> Tensor:
    """Σ_kij coeff_kij·S_k,ij / (R(N−1)): the SogCLR surrogates of both directions. With every
    row (S_T = Sᵀ) one product: Σ_ij (coeff_0 + coeff_1ᵀ)_ij s_ij."""
    image_sims, text_sims = sims
    anchors, columns = image_sims.shape
    if anchors == columns:
        total = ((coeff[0] + coeff[1].T) * image_sims).sum()
    else:
        total = (coeff[0] * image_sims).sum() + (coeff[1] * text_sims).sum()
    return total / (anchors * (columns - 1))


@torch.no_grad()
def rgcl_output(loss: Tensor, tau: Tensor, log_mean: Tensor, rho: float) -> LossOutput:
    """The RGCL family's result: ``loss``, the objective estimate (1/B) Σ_i [τ_i(log u^I_i +
    b^I_i + ρ) + τ'_i(log u^T_i + b^T_i + ρ)] with its two halves ``image_to_text`` and
    ``text_to_image``, and the batch's mean τ per direction (``tau_image``, ``tau_text``).
    ``tau`` and ``log_mean`` are (2, B), image anchors in row 0. (``loss`` keeps its graph.)"""
    objective = (tau * (log_mean + rho)).mean(dim=1)  # per direction
    mean_tau = tau.mean(dim=1)
    return LossOutput(
        loss=loss,
        objective=objective.sum(),
        terms={
            "image_to_text": objective[0],
            "text_to_image": objective[1],
            "tau_image": mean_tau[0],
            "tau_text": mean_tau[1],
        },
    )


class RGCLEstimator(GCLEstimator):
    """A two-direction ``GCLEstimator`` (row 0: image anchors, row 1: text anchors) plus the
    per-sample temperature state.

    Buffers, each of shape (2, ``num_samples``): ``u``, ``b`` (the SogCLR estimators), ``tau``
    (τ_i and τ'_i, start at ``tau_init``) and ``m`` (momentum of the clipped τ-gradient, starts
    at 0). ``negatives_only`` as in ``GCLEstimator``.
    """

    tau: Tensor
    m: Tensor

    def __init__(
        self, num_samples: int, eps: float, tau_init: float, *, negatives_only: bool = True
    ) -> None:
        super().__init__(num_samples, eps, directions=2, negatives_only=negatives_only)
        self.register_buffer("tau", torch.full((2, num_samples), float(tau_init)))
        self.register_buffer("m", torch.zeros(2, num_samples))

    @torch.no_grad()
    def step_temperature(
        self,
        index: Tensor,
        tau: Tensor,
        grad: Tensor,
        *,
        beta: float,
        eta: float,
        grad_clip: float,
        tau_min: float,
        tau_max: float,
    ) -> None:
        """m_i ← (1−β)m_i + β·clip(G_i, ±grad_clip); τ_i ← clip(τ_i − η m_i, τ_min, τ_max)."""
        m = (1 - beta) * self.m[:, index] + beta * grad.clamp(-grad_clip, grad_clip)
        self.m.index_copy_(1, index, m)
        self.tau.index_copy_(1, index, (tau - eta * m).clamp_(tau_min, tau_max))


def check_common(tau_min: float, tau_max: float, rho: float, gamma: float, eps: float) -> None:
    """The checks ``isogclr`` and ``isogclr_tempnet`` share; one-line ``ValueError``."""
    if not 0 < tau_min < tau_max:
        raise ValueError(f"need 0 < tau_min < tau_max, got tau_min={tau_min}, tau_max={tau_max}")
    if rho < 0:
        raise ValueError(f"rho must be >= 0, got {rho}")
    check_estimator_params(gamma, eps)


class ISogCLRLoss(ContrastiveLoss):
    """iSogCLR (Qiu et al., ICML 2023): robust GCL with per-sample temperatures.

    Optimises over the model and the temperatures τ_i (image anchor i), τ'_i (text anchor i),
    both in [τ_min, τ_max]::

        F = (1/n) Σ_i [ τ_i log E_j exp(h^I_ij/τ_i) + τ_i ρ
                        + τ'_i log E_j exp(h^T_ij/τ'_i) + τ'_i ρ ]

    with h^I_ij = s_ij − s_ii and h^T_ij = s_ji − s_ii as in SogCLR. Two estimators of E_j:

    - ``negatives_only=True`` (default), the course code's ``iSogCLR_New_Loss`` without its
      temperature network (AmCLR repository @802054a and iSogCLR repository @fcb1493,
      ``use_temp_net=False``): E over the negatives j ≠ i, and with ``first_epoch_gamma_one``
      u_i = g_i in epoch 0.
    - ``negatives_only=False, first_epoch_gamma_one=False``: the iSogCLR paper's own code,
      ``SogCLR_DRO_Loss`` (iSogCLR repository @c20903b, bimodal_exps/models/losses.py): the
      positive's exp(0 − b_i) stays in g (still divided by B − 1) and u starts at 0 with γ
      from the first step.

    Per step, for each direction and with the stored τ_i of the batch's anchors (``rgcl_step``):

    1. the SogCLR estimator step (b, u, w) with z_ij = h_ij/τ_i; γ = 1 in epoch 0 when
       ``first_epoch_gamma_one``, ``gamma`` otherwise;
    2. G_i = log u_i + b_i + ρ − (1/(B−1)) Σ_{j≠i} w_ij z_ij;
    3. m_i ← (1−β)m_i + β·clip(G_i, −grad_clip, grad_clip);
    4. τ_i ← clip(τ_i − η m_i, τ_min, τ_max), η constant (the ``const`` η schedule of
       ``SogCLR_DRO_Loss``; its cosine/exp schedules are not implemented).

    ε is added to the unshifted moving average (``weight_denominator``). The references apply it
    in shifted units: ``iSogCLR_New_Loss`` floors the shifted sum at 1e-14, ``SogCLR_DRO_Loss``
    adds 1e-10 to the shifted mean; either damps the gradient once b grows. With ε = 0 all
    agree. Defaults: τ_init 0.01, [τ_min, τ_max] = [0.005, 0.05], ρ = 8 and ε = 1e-14 from
    ``iSogCLR_New_Loss``; β = 0.9, η = 0.01 and grad_clip = 5 from ``SogCLR_DRO_Loss`` (the
    course code hard-codes β = 0.5, η = 1e-5).

    ``loss`` is the SogCLR surrogate of both directions with the per-anchor weights w (value ≈ 0,
    gradient that of F in the model for the step's τ). ``objective`` (reported as train_loss) is
    the estimate of F on the batch's anchors, summed over the two directions, with the τ used in
    this step and the updated estimators: (1/B) Σ_i [τ_i(log u^I_i + b^I_i + ρ) +
    τ'_i(log u^T_i + b^T_i + ρ)]. Detached terms: ``image_to_text`` and ``text_to_image`` (the
    image- and text-anchor halves of ``objective``), ``tau_image`` and ``tau_text`` (mean τ of
    the batch's anchors used in this step).

    State (``state_dict``): ``state.u``, ``state.b``, ``state.tau``, ``state.m``, each of shape
    (2, ``num_samples``): row 0 for image anchors, row 1 for text anchors. No host
    synchronisation in ``forward``. Local-loss form (:mod:`.base`): the means over i run over
    this process's anchors, the sums over j over all N columns; only those anchors' u, b, τ, m
    are updated here (the contract shares them).

    Args:
        num_samples: dataset size n (``index`` < n).
        tau_init: initial τ of every sample, in [tau_min, tau_max].
        tau_min, tau_max: bounds of τ, 0 < tau_min < tau_max.
        rho: ρ ≥ 0, the KL budget of the DRO.
        eta: η ≥ 0, constant step size of the τ update (0 freezes τ at tau_init: SogCLR).
        beta: β ∈ (0, 1], momentum rate of the τ-gradient.
        grad_clip: > 0, G is clipped to [−grad_clip, grad_clip] before the momentum.
        gamma: moving-average rate γ ∈ (0, 1].
        eps: ε ≥ 0 added to the unshifted moving average in the weight denominator.
        negatives_only: estimate E over the negatives only (False: the positive too).
        first_epoch_gamma_one: in epoch 0 treat γ as 1 (u_i = g_i).
    """

    name = "isogclr"
    min_batch = 2

    def __init__(
        self,
        *,
        num_samples: int,
        tau_init: float = 0.01,
        tau_min: float = 0.005,
        tau_max: float = 0.05,
        rho: float = 8.0,
        eta: float = 0.01,
        beta: float = 0.9,
        grad_clip: float = 5.0,
        gamma: float = 0.8,
        eps: float = 1e-14,
        negatives_only: bool = True,
        first_epoch_gamma_one: bool = True,
    ) -> None:
        super().__init__(num_samples)
        check_common(tau_min, tau_max, rho, gamma, eps)
        if not tau_min <= tau_init <= tau_max:
            raise ValueError(
                f"tau_init must be in [tau_min, tau_max] = [{tau_min}, {tau_max}], got {tau_init}"
            )
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got {eta}")
        if not 0 < beta <= 1:
            raise ValueError(f"beta must be in (0, 1], got {beta}")
        if grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0, got {grad_clip}")
        self.tau_init, self.tau_min, self.tau_max = tau_init, tau_min, tau_max
        self.rho, self.eta, self.beta, self.grad_clip = rho, eta, beta, grad_clip
        self.gamma, self.first_epoch_gamma_one = gamma, first_epoch_gamma_one
        self.state = RGCLEstimator(num_samples, eps, tau_init, negatives_only=negatives_only)

    def compute(self, batch: PairBatch) -> LossOutput:
        sims = anchor_similarities(batch)
        rows = batch.anchor_rows
        index = batch.index[rows]
        tau = self.state.tau[:, index]  # (2, R): τ of image anchors, τ' of text anchors
        gamma = 1.0 if batch.epoch == 0 and self.first_epoch_gamma_one else self.gamma
        step = rgcl_step(sims, tau, self.state, index, gamma=gamma, rho=self.rho, offset=rows.start)
        self.state.step_temperature(
            index,
            tau,
            step.grad,
            beta=self.beta,
            eta=self.eta,
            grad_clip=self.grad_clip,
            tau_min=self.tau_min,
            tau_max=self.tau_max,
        )
        return rgcl_output(surrogate_loss(sims, step.coeff), tau, step.log_mean, self.rho)
