"""AmCLR and xAmCLR: SogCLR over original and augmented views (reference losses.md §4.2).

Views: x (``image_emb``), x' (``image_aug_emb``), t (``text_emb``), t' (``text_aug_emb``), all
L2-normalised (B, d). A *term* is an ordered pair (anchor view a, candidate view c) with anchor
differences h^{a→c}_ij = <a_i, c_j> − <a_i, c_i> and the SogCLR surrogate of §3.2 with its own
moving-average estimator. Terms, in the fixed processing order (that of the reference code,
image-anchored terms first; ``term_names`` spells them)::

    AmCLR  (8):  x→t, x→t', x'→t, x'→t',                t→x, t→x', t'→x, t'→x'
    xAmCLR (12): x→t, x→t', x'→t, x'→t', x→x', x'→x,    t→x, t→x', t'→x, t'→x', t→t', t'→t

Computation: one product [x; x'] @ [t; t']ᵀ/τ (2B, 2B) holds all four cross-modal blocks; for
xAmCLR one batched product [x; t'] @ [x'; t]ᵀ/τ (2, B, B) holds the intra-modal ones. The
image-anchored terms are stacked as (T/2, B, B) with anchors along rows, the text-anchored ones
with anchors along *columns* (the blocks' own layout, so no transposed copies except for x'→x and
t'→t), and each stack is updated by one batched estimator call. The surrogate's gradient goes
through a detached coefficient matrix on each product (loss = <coef, product>), so autograd only
differentiates the matmuls. No host syncs. The local-loss form (``_AugmentedGCL._anchor_rows``)
computes this process's anchors of every term against all candidates, anchors along rows.
"""

import torch
from torch import Tensor, nn

from .base import ContrastiveLoss, LossOutput, PairBatch
from .clip import similarity_matrix
from .sogclr import anchor_differences, check_estimator_params, weight_denominator

_IMAGE_CROSS_TERMS = (  # (anchor, candidate), order of the blocks [a, c] of [x; x'] @ [t; t']ᵀ
    ("image", "text"),
    ("image", "text_aug"),
    ("image_aug", "text"),
    ("image_aug", "text_aug"),
)
_TEXT_CROSS_TERMS = (  # blocks [a, c] read as text anchors c: order (c, a)
    ("text", "image"),
    ("text", "image_aug"),
    ("text_aug", "image"),
    ("text_aug", "image_aug"),
)
_IMAGE_INTRA_TERMS = (("image", "image_aug"), ("image_aug", "image"))
_TEXT_INTRA_TERMS = (("text", "text_aug"), ("text_aug", "text"))


class _TermEstimators(nn.Module):
    """Moving averages u·exp(b) ≈ E_{j≠i} exp(h_ij/τ) for the T terms of one anchor modality.

    Buffers ``u`` and ``b`` of shape (G, num_samples), both starting at 0, indexed by the pair's
    dataset index. The T = G·m terms are grouped in order: array g serves terms g·m … g·m + m − 1,
    which update it **sequentially** in that order within a step (m = 1: every term has its own
    array, the plain SogCLR update of ``GCLEstimator`` applied to each term; G = 1, m = T: the
    reference's shared array). For term k of a group, with z_k = h_k/τ::

        b_k = max(b_{k−1}, max_j z_k,ij)                       (b_{−1} = stored b)
        g_k = (1/(B−1)) Σ_{j≠i} exp(z_k,ij − b_k)
        u_k = (1−γ)·u_{k−1}·exp(b_{k−1} − b_k) + γ·g_k         (u_{−1} = stored u)
        w_k,ij = exp(z_k,ij − b_k) / (u_k + ε·exp(−b_k)),  w_k,ii = 0

    and u_{m−1}, b_{m−1} are stored. For m > 1 the recurrence is evaluated in closed form,
    u_k = (1−γ)^{k+1} u_{−1} e^{b_{−1}−b_k} + Σ_{l≤k} γ(1−γ)^{k−l} g_l e^{b_l−b_k}, with
    the coefficients precomputed for γ (from epoch 1 on) and γ = 1 (epoch 0: u_k = g_k).
    """

    u: Tensor
    b: Tensor
    mix: Tensor
    carry: Tensor

    def __init__(self, num_arrays: int, terms_per_array: int, num_samples: int, gamma: float):
        super().__init__()
        self.terms_per_array = terms_per_array
        self.gamma = gamma
        self.register_buffer("u", torch.zeros(num_arrays, num_samples))
        self.register_buffer("b", torch.zeros(num_arrays, num_samples))
        steps = torch.arange(terms_per_array, dtype=torch.float64)
        lags = steps[:, None] - steps[None, :]
        mix, carry = [], []
        for rate in (1.0, gamma):  # row 0: epoch 0 (γ treated as 1); row 1: later epochs
            keep = 1.0 - rate
            mix.append(torch.where(lags >= 0, rate * keep ** lags.clamp_min(0), 0.0))
            carry.append(keep ** (steps + 1))
        # float64 so that a float64 module uses γ's powers exactly; cast to u's dtype on use
        self.register_buffer("mix", torch.stack(mix), persistent=False)
        self.register_buffer("carry", torch.stack(carry), persistent=False)

    @torch.no_grad()
    def update(
        self,
        scaled_diffs: Tensor,
        index: Tensor,
        first_epoch: bool,
        anchor_dim: int,
        offset: int = 0,
    ):
        """Update from z = h/τ (T, B, B) with anchors along ``anchor_dim`` (1: rows, 2: columns).

        Works in place: returns (e, g, u_k, b_k) where e (T, B, B) = exp(z − b_k) with a zero
        diagonal reuses z's storage (the weights are e / (u_k + ε·exp(−b_k))) and g, u_k, b_k
        (T, B) are the per-term values of the step. In the local-loss form z is (T, R, N), R
        anchors ``index`` along rows against N candidates, anchor k's positive in column
        ``offset + k``; the sums run over the N candidates.
        """
        num_terms, anchors = scaled_diffs.shape[0], scaled_diffs.shape[anchor_dim]
        candidate_dim = 3 - anchor_dim
        candidates = scaled_diffs.shape[candidate_dim]
        groups, m = self.u.shape[0], self.terms_per_array
        b_old = self.b.index_select(1, index)  # (G, R)
        u_old = self.u.index_select(1, index)
        row_max = scaled_diffs.amax(dim=candidate_dim).view(groups, m, anchors)
        b_seq = torch.maximum(row_max, b_old[:, None]).cummax(dim=1).values  # (G, m, R)
        b_term = b_seq.view(num_terms, anchors)
        exp_diffs = scaled_diffs.sub_(b_term.unsqueeze(candidate_dim)).exp_()
        _positives(exp_diffs, anchor_dim, offset).zero_()
        g = exp_diffs.sum(dim=candidate_dim).div_(candidates - 1).view(groups, m, anchors)
        if m == 1:  # one term per array: the plain SogCLR update
            rate = 1.0 if first_epoch else self.gamma
            u_seq = (1 - rate) * u_old[:, None] * torch.exp(b_old[:, None] - b_seq) + rate * g
        else:
            row = 0 if first_epoch else 1
            mix, carry = self.mix[row].to(g.dtype), self.carry[row].to(g.dtype)
            u_seq = carry[None, :, None] * u_old[:, None] * torch.exp(b_old[:, None] - b_seq)
            # rescale g_l from shift b_l to b_k (l ≤ k; mix is 0 above the diagonal)
            rescale = (b_seq[:, None, :, :] - b_seq[:, :, None, :]).clamp_max_(0).exp_()
            u_seq = u_seq + torch.einsum("kl,gklb,glb->gkb", mix, rescale, g)
        self.u.index_copy_(1, index, u_seq[:, -1])
        self.b.index_copy_(1, index, b_seq[:, -1])
        g = g.view(num_terms, anchors)
        return exp_diffs, g, u_seq.view(num_terms, anchors), b_term


def _positives(terms: Tensor, anchor_dim: int, offset: int) -> Tensor:
    """The view of the positive entries of (T, ·, ·) ``terms`` with anchors along
    ``anchor_dim``: anchor k's positive is candidate ``offset + k``."""
    return terms.diagonal(offset if anchor_dim == 1 else -offset, dim1=1, dim2=2)


class _AugmentedGCL(ContrastiveLoss):
    """SogCLR terms over original and augmented views: what AmCLR and xAmCLR share (module
    docstring; ``AmCLRLoss`` states the estimator, the weights and the objective).

    ``weights`` maps ``image_aug``, ``text_aug``, ``both_aug`` (and, with ``intra``,
    ``intra_image``, ``intra_text``) to the λ of those terms; ``intra`` adds the four
    intra-modal terms.
    """

    _lambda: Tensor
    needs_views = True
    min_batch = 2

    def __init__(
        self,
        *,
        num_samples: int,
        temperature: float,
        gamma: float,
        eps: float,
        shared_u: bool,
        weights: dict[str, float],
        intra: bool,
    ) -> None:
        super().__init__(num_samples)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        check_estimator_params(gamma, eps)
        for key, value in weights.items():
            if value < 0:
                raise ValueError(f"weight_{key} must be >= 0, got {value}")
        self.temperature = temperature
        self.gamma = gamma
        self.eps = eps
        self.shared_u = shared_u
        self.intra = intra
        image_terms = _IMAGE_CROSS_TERMS + (_IMAGE_INTRA_TERMS if intra else ())
        text_terms = _TEXT_CROSS_TERMS + (_TEXT_INTRA_TERMS if intra else ())
        terms = image_terms + text_terms
        self.term_names: tuple[str, ...] = tuple(f"{a}_to_{c}" for a, c in terms)
        self.term_weights: dict[str, float] = {
            name: _term_weight(anchor, candidate, weights)
            for name, (anchor, candidate) in zip(self.term_names, terms, strict=True)
        }
        lam = torch.tensor(list(self.term_weights.values()), dtype=torch.float64)
        self.register_buffer("_lambda", lam, persistent=False)  # float64: exact λ in .double()
        per_modality = len(image_terms)
        arrays, per_array = (1, per_modality) if shared_u else (per_modality, 1)
        self.image_state = _TermEstimators(arrays, per_array, num_samples, gamma)
        self.text_state = _TermEstimators(arrays, per_array, num_samples, gamma)

    def compute(self, batch: PairBatch) -> LossOutput:
        state_dtype = self.image_state.u.dtype
        lam = self._lambda.to(state_dtype)
        form = self._all_rows if batch.all_rows else self._anchor_rows
        products, coefficients, per_term = form(batch, lam, batch.epoch == 0)
        loss = torch.stack(
            [
                torch.dot(coef.reshape(-1).to(product.dtype), product.reshape(-1))
                for coef, product in zip(coefficients, products, strict=True)
            ]
        ).sum()
        terms = dict(zip(self.term_names, per_term.unbind(), strict=True))
        return LossOutput(loss=loss, objective=(lam * per_term).sum(), terms=terms)

    def _all_rows(
        self, batch: PairBatch, lam: Tensor, first_epoch: bool
    ) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """The full-matrix form (module docstring): the products, their detached coefficients
        (loss = Σ <coefficient, product>) and the per-term objectives."""
        image_emb, image_aug_emb, text_emb, text_aug_emb = batch.views()
        index, size = batch.index, batch.size
        inv_tau = 1.0 / self.temperature
        # s/τ of the four cross-modal blocks at once (1/τ folded into the smaller operand):
        # cross.view(2, B, 2, B)[a, i, c, j] = <a_i, c_j>/τ, a ∈ (x, x'), c ∈ (t, t')
        cross = similarity_matrix(
            torch.cat([image_emb, image_aug_emb]), torch.cat([text_emb, text_aug_emb]) * inv_tau
        )
        products = [cross]
        if self.intra:  # intra[0][i, j] = <x_i, x'_j>/τ, intra[1][i, j] = <t'_i, t_j>/τ
            intra = torch.stack([image_emb, text_aug_emb]) @ (
                torch.stack([image_aug_emb, text_emb]).mT * inv_tau
            )
            products.append(intra)
        state_dtype = self.image_state.u.dtype
        per_modality = len(self.term_names) // 2
        with torch.no_grad():
            # z = h/τ per term: image anchors along rows (z[k, i, j], anchor i), text anchors
            # along columns (z[k, i, j], anchor j, candidate i) — the blocks' own layout
            image_z = cross.new_empty((per_modality, size, size), dtype=state_dtype)
            text_z = torch.empty_like(image_z)
            blocks = cross.detach().view(2, size, 2, size)
            positives = blocks.diagonal(dim1=1, dim2=3)  # [a, c, i] = <a_i, c_i>/τ
            torch.sub(
                blocks.permute(0, 2, 1, 3),
                positives[:, :, :, None],
                out=image_z[:4].view(2, 2, size, size),
            )
            torch.sub(
                blocks.permute(2, 0, 1, 3),
                positives.transpose(0, 1)[:, :, None, :],
                out=text_z[:4].view(2, 2, size, size),
            )
            if self.intra:
                pairs = intra.detach()
                intra_pos = pairs.diagonal(dim1=1, dim2=2)  # <x_i, x'_i>/τ, <t_i, t'_i>/τ
                torch.sub(pairs[0], intra_pos[0][:, None], out=image_z[4])  # x→x'
                torch.sub(pairs[0].T, intra_pos[0][:, None], out=image_z[5])  # x'→x
                torch.sub(pairs[1], intra_pos[1][None, :], out=text_z[4])  # t→t'
                torch.sub(pairs[1].T, intra_pos[1][None, :], out=text_z[5])  # t'→t
            image_c, image_objective = self._coefficients(
                image_z, self.image_state, index, first_epoch, lam[:per_modality], anchor_dim=1
            )
            text_c, text_objective = self._coefficients(
                text_z, self.text_state, index, first_epoch, lam[per_modality:], anchor_dim=2
            )
            # gather the coefficients back into the products' layouts
            cross_coef = torch.empty((2, size, 2, size), dtype=cross.dtype, device=cross.device)
            torch.add(
                image_c[:4].view(2, 2, size, size).permute(0, 2, 1, 3),
                text_c[:4].view(2, 2, size, size).permute(1, 2, 0, 3),
                out=cross_coef,
            )
            coefficients = [cross_coef]
            if self.intra:
                intra_coef = torch.empty_like(intra)
                torch.add(image_c[4], image_c[5].T, out=intra_coef[0])
                torch.add(text_c[4], text_c[5].T, out=intra_coef[1])
                coefficients.append(intra_coef)
        return products, coefficients, torch.cat([image_objective, text_objective])

    def _anchor_rows(
        self, batch: PairBatch, lam: Tensor, first_epoch: bool
    ) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """The local-loss form (:mod:`.base`): this process's R anchors ``batch.anchor_rows``
        of every term against all N candidates, anchors along rows in every product::

            [x_R; x'_R] @ [t; t']ᵀ/τ  (2R, 2N)   image-anchored cross-modal terms
            [t_R; t'_R] @ [x; x']ᵀ/τ  (2R, 2N)   text-anchored cross-modal terms
            [x_R, x'_R, t_R, t'_R] @ [x', x, t', t]ᵀ/τ  (4, R, N)   x→x', x'→x, t→t', t'→t

        (the last with ``intra``). Returns what :meth:`_all_rows` does; the means over i run
        over the R anchors, the sums over j over the N candidates.
        """
        image, image_aug, text, text_aug = batch.views()
        rows, size = batch.anchor_rows, batch.size
        anchors = rows.stop - rows.start
        inv_tau = 1.0 / self.temperature
        products = [
            similarity_matrix(torch.cat([a[rows], b[rows]]), torch.cat([c, d]) * inv_tau)
            for a, b, c, d in (
                (image, image_aug, text, text_aug),
                (text, text_aug, image, image_aug),
            )
        ]
        if self.intra:
            products.append(
                torch.stack([image[rows], image_aug[rows], text[rows], text_aug[rows]])
                @ (torch.stack([image_aug, image, text_aug, text]).mT * inv_tau)
            )

        def by_term(cross: Tensor) -> Tensor:
            """(4, R, N) blocks of a (2R, 2N) product, [a, c] in the order of the terms."""
            return cross.view(2, anchors, 2, size).transpose(1, 2).reshape(4, anchors, size)

        with torch.no_grad():
            z = [by_term(product) for product in products[:2]]
            if self.intra:
                z = [torch.cat([z[0], products[2][:2]]), torch.cat([z[1], products[2][2:]])]
            state_dtype = self.image_state.u.dtype
            z = [anchor_differences(t.to(state_dtype), rows.start) for t in z]  # new tensors
            index = batch.index[rows]
            per_modality = len(self.term_names) // 2
            (image_c, image_objective), (text_c, text_objective) = (
                self._coefficients(
                    terms, state, index, first_epoch, weights, anchor_dim=1, offset=rows.start
                )
                for terms, state, weights in (
                    (z[0], self.image_state, lam[:per_modality]),
                    (z[1], self.text_state, lam[per_modality:]),
                )
            )
            coefficients = [
                c[:4].view(2, 2, anchors, size).transpose(1, 2) for c in (image_c, text_c)
            ]
            if self.intra:
                coefficients.append(torch.cat([image_c[4:], text_c[4:]]))
        return products, coefficients, torch.cat([image_objective, text_objective])

    def _coefficients(
        self,
        scaled: Tensor,
        estimator: _TermEstimators,
        index: Tensor,
        first_epoch: bool,
        lam: Tensor,
        anchor_dim: int,
        offset: int = 0,
    ) -> tuple[Tensor, Tensor]:
        """Coefficients of the terms' surrogates on s/τ, in place of z, and their objectives.

        With s/τ in the products, ℓ = (1/(B(B−1))) Σ_ij w_ij (s_ij − s_ii) has the coefficient
        τλ w_ij/(B(B−1)) on s_ij/τ off the diagonal and minus their sum over candidates,
        τλ (B−1) g_i/((u_i + ε·exp(−b_i)) B(B−1)), on the positive s_ii/τ. For R anchors
        against N candidates (local-loss form; ``offset`` as in ``_TermEstimators.update``)
        B(B−1) is R(N−1) and B−1 is N−1.
        """
        anchors, candidates = scaled.shape[anchor_dim], scaled.shape[3 - anchor_dim]
        exp_diffs, g, u_term, b_term = estimator.update(
            scaled, index, first_epoch, anchor_dim, offset
        )
        denominator = weight_denominator(u_term, b_term, self.eps)
        scale = lam[:, None] * (self.temperature / (anchors * (candidates - 1))) / denominator
        coef = exp_diffs.mul_(scale.unsqueeze(3 - anchor_dim))
        _positives(coef, anchor_dim, offset).copy_(scale * g).mul_(1 - candidates)
        floor = torch.finfo(u_term.dtype).tiny
        objectives = self.temperature * (torch.log(u_term.clamp_min(floor)) + b_term).mean(dim=1)
        return coef, objectives


class AmCLRLoss(_AugmentedGCL):
    """AmCLR (Jagannath et al. 2024; the AmCLR repository's ``SogCLRwithAug_Linear_Loss``,
    @802054a src/models/losses.py): 8 SogCLR terms over the views.

    L = Σ_terms λ_term ℓ_term with ℓ^{a→c} = (1/B) Σ_i (1/(B−1)) Σ_{j≠i} w_ij h^{a→c}_ij, w the
    detached SogCLR weights of the term's estimator (§3.2, with the overflow shift b). L's
    gradient is Σ λ × the SogCLR gradient of each term's τ-scaled global contrastive loss; its
    value is not an estimate of the objective. Weights λ: 1 for the (x, t) terms,
    ``weight_image_aug`` for (x', t), ``weight_text_aug`` for (x, t'), ``weight_both_aug`` for
    (x', t') — both directions alike. All 1 reproduces the reference.

    State: buffers ``image_state.u``, ``image_state.b`` (image-anchored terms) and
    ``text_state.u``, ``text_state.b`` (text-anchored terms), indexed by the pair's dataset index:

    - ``shared_u=False`` (default): shape (T/2, num_samples) each, row k = the k-th term of that
      anchor modality in ``term_names`` order; every term has its own u and shift b, updated like
      ``SogCLRLoss``'s estimators.
    - ``shared_u=True``: the reference's two arrays, shape (1, num_samples) each: one for every
      image-anchored term (anchors x and x'), one for every text-anchored term. Within a step the
      terms of a modality update it sequentially in ``term_names`` order (x→t, x→t', x'→t,
      x'→t'[, x→x', x'→x]; t→x, t→x', t'→x, t'→x'[, t→t', t'→t]); each term's weights use u right
      after its own update, and in epoch 0 u = g of the term (γ treated as 1), as in the
      reference. The reference never writes its shift b (it stays 0, so exp(h/τ) overflows once
      a negative beats its positive by more than ≈ 88τ, 0.88 at τ = 0.01); here the shared
      arrays keep b, a running maximum over the terms in that order, so that u·exp(b) is the
      reference's unshifted u exactly.

    ε (1e-8, as the reference) is added to the unshifted moving average
    (``weight_denominator``): w = exp(h/τ − b)/(u + ε·exp(−b)) = exp(h/τ)/(U + ε), the
    reference's weights for every ε (and, with ``shared_u``, its two arrays).

    ``objective`` = Σ_terms λ (1/B) Σ_i τ(log u_k,i + b_k,i) with u_k, b_k the term's estimate
    after its update (u floored at the smallest normal float); the detached per-term entries
    (``term_names``, e.g. ``image_to_text_aug``) are these unweighted estimates.

    Args:
        num_samples: dataset size n (``index`` < n).
        temperature: τ > 0.
        gamma: moving-average rate γ ∈ (0, 1] from epoch 1 on (epoch 0 uses 1).
        eps: ε ≥ 0 added to the unshifted moving average in the weight denominator.
        weight_image_aug, weight_text_aug, weight_both_aug: λ ≥ 0 of the augmented terms.
        shared_u: the reference's two shared estimator arrays instead of one per term.
    """

    name = "amclr"

    def __init__(
        self,
        *,
        num_samples: int,
        temperature: float = 0.01,
        gamma: float = 0.8,
        eps: float = 1e-8,
        weight_image_aug: float = 1.0,
        weight_text_aug: float = 1.0,
        weight_both_aug: float = 1.0,
        shared_u: bool = False,
    ) -> None:
        super().__init__(
            num_samples=num_samples,
            temperature=temperature,
            gamma=gamma,
            eps=eps,
            shared_u=shared_u,
            weights={
                "image_aug": weight_image_aug,
                "text_aug": weight_text_aug,
                "both_aug": weight_both_aug,
            },
            intra=False,
        )


class XAmCLRLoss(_AugmentedGCL):
    """xAmCLR (the AmCLR repository's ``SogCLRwithAug_wSelf_Linear_Loss``, @802054a): AmCLR plus
    4 intra-modal terms.

    Adds x→x', x'→x (image anchors; positives (x_i, x'_i)) with weight ``weight_intra_image`` and
    t→t', t'→t (text anchors; positives (t_i, t'_i)) with weight ``weight_intra_text``: 12 terms
    (order in ``term_names``; state (6, n) per modality, or (1, n) with ``shared_u``, where the
    intra terms update the shared arrays after the cross-modal ones of the same anchor modality,
    as in the reference). Everything else (ε, ``shared_u``, objective) as ``AmCLRLoss``.
    """

    name = "xamclr"

    def __init__(
        self,
        *,
        num_samples: int,
        temperature: float = 0.01,
        gamma: float = 0.8,
        eps: float = 1e-8,
        weight_image_aug: float = 1.0,
        weight_text_aug: float = 1.0,
        weight_both_aug: float = 1.0,
        weight_intra_image: float = 1.0,
        weight_intra_text: float = 1.0,
        shared_u: bool = False,
    ) -> None:
        super().__init__(
            num_samples=num_samples,
            temperature=temperature,
            gamma=gamma,
            eps=eps,
            shared_u=shared_u,
            weights={
                "image_aug": weight_image_aug,
                "text_aug": weight_text_aug,
                "both_aug": weight_both_aug,
                "intra_image": weight_intra_image,
                "intra_text": weight_intra_text,
            },
            intra=True,
        )


def _term_weight(anchor: str, candidate: str, weights: dict[str, float]) -> float:
    views = {anchor, candidate}
    if views <= {"image", "image_aug"}:
        return weights["intra_image"]
    if views <= {"text", "text_aug"}:
        return weights["intra_text"]
    image_aug = "image_aug" in views
    text_aug = "text_aug" in views
    if image_aug and text_aug:
        return weights["both_aug"]
    if image_aug:
        return weights["image_aug"]
    if text_aug:
        return weights["text_aug"]
    return 1.0
