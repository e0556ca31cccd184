"""AmCLR / xAmCLR against a naive per-term loop of the §3.2 SogCLR equations (losses.md §4.2).

The reference below loops over terms, anchors and candidates in plain Python (float64) with its
own per-term (or, for ``shared_u``, per-modality, sequentially updated) state and shares no code
with ``trainables.losses``.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from loss_references import (
    GROWING_SHIFT,
    UnshiftedMean,
    assert_same_output,
    dot,
    growing_shift_batch,
    unit_rows,
)

from trainables.losses import LOSS_NAMES, build_loss, loss_defaults

AMCLR_TERMS = [
    ("image", "text"),
    ("image", "text_aug"),
    ("image_aug", "text"),
    ("image_aug", "text_aug"),
    ("text", "image"),
    ("text", "image_aug"),
    ("text_aug", "image"),
    ("text_aug", "image_aug"),
]
XAMCLR_TERMS = [
    *AMCLR_TERMS[:4],
    ("image", "image_aug"),
    ("image_aug", "image"),
    *AMCLR_TERMS[4:],
    ("text", "text_aug"),
    ("text_aug", "text"),
]
TERMS = {"amclr": AMCLR_TERMS, "xamclr": XAMCLR_TERMS}
WEIGHTS = {  # non-unit, distinct
    "weight_image_aug": 0.7,
    "weight_text_aug": 1.3,
    "weight_both_aug": 0.4,
    "weight_intra_image": 0.6,
    "weight_intra_text": 1.7,
}
SCHEDULE = [  # (epoch, dataset indices): each index once per epoch, batches overlap across epochs
    (0, [0, 1, 2, 3]),
    (0, [4, 5, 6, 7]),
    (1, [5, 2, 7, 0]),
    (1, [3, 6, 1, 4]),
]
VIEWS = ("image", "image_aug", "text", "text_aug")


def leaves(views: dict) -> dict:
    return {key: t.detach().clone().requires_grad_() for key, t in views.items()}


def drifting_views(step: int, batch: int = 4, dim: int = 6) -> dict:
    """Texts drift away from their images as ``step`` grows (so h and the shift b grow); the
    augmented views are perturbations of the originals."""
    image = unit_rows(batch, dim, seed=10 + step)
    mix = 0.2 + 0.25 * step
    text = F.normalize((1 - mix) * image + mix * unit_rows(batch, dim, seed=100 + step), dim=-1)
    image_aug = F.normalize(image + 0.4 * unit_rows(batch, dim, seed=200 + step), dim=-1)
    text_aug = F.normalize(text + 0.4 * unit_rows(batch, dim, seed=300 + step), dim=-1)
    return {"image": image, "image_aug": image_aug, "text": text, "text_aug": text_aug}


def call(loss_fn, views: dict, index, epoch: int) -> dict:
    return loss_fn(
        views["image"],
        views["text"],
        torch.tensor(index),
        epoch=epoch,
        image_aug_emb=views["image_aug"],
        text_aug_emb=views["text_aug"],
    )


def term_weight(anchor: str, candidate: str, hparams: dict) -> float:
    views = {anchor, candidate}
    if views == {"image", "image_aug"}:
        return hparams.get("weight_intra_image", 1.0)
    if views == {"text", "text_aug"}:
        return hparams.get("weight_intra_text", 1.0)
    if views == {"image_aug", "text_aug"}:
        return hparams.get("weight_both_aug", 1.0)
    if "image_aug" in views:
        return hparams.get("weight_image_aug", 1.0)
    if "text_aug" in views:
        return hparams.get("weight_text_aug", 1.0)
    return 1.0


class NaiveAmCLR:
    """§3.2 per term and anchor, unshifted as the reference code: U, w = exp(z)/(U + ε),
    surrogate and τ log U.

    ``shared``: one U per anchor modality (key "image" / "text"), updated term after term in
    list order (the reference's two arrays); otherwise one U per term.
    """

    def __init__(self, terms, hparams, tau, gamma, eps, shared=False):
        self.terms, self.tau, self.gamma, self.eps = terms, tau, gamma, eps
        self.weights = [term_weight(a, c, hparams) for a, c in terms]
        self.shared = shared
        self.mean = UnshiftedMean()

    def key(self, k: int):
        anchor = self.terms[k][0]
        return anchor.split("_")[0] if self.shared else k

    def step(self, views, index, epoch):
        batch = len(index)
        gamma = 1.0 if epoch == 0 else self.gamma
        loss, objective, per_term = 0.0, 0.0, []
        for k, (anchor, candidate) in enumerate(self.terms):
            a, c = views[anchor], views[candidate]
            term_objective = 0.0
            for i in range(batch):
                h = [dot(a[i], c[j]) - dot(a[i], c[i]) for j in range(batch)]
                negatives = [j for j in range(batch) if j != i]
                exps = [math.exp(h[j].item() / self.tau) for j in negatives]
                u = self.mean.update((self.key(k), index[i]), sum(exps) / (batch - 1), gamma)
                for j, e in zip(negatives, exps, strict=True):
                    loss = loss + self.weights[k] * e / (u + self.eps) * h[j] / (
                        batch * (batch - 1)
                    )
                term_objective += self.tau * math.log(u) / batch
            per_term.append(term_objective)
            objective += self.weights[k] * term_objective
        return loss, objective, per_term


def state_rows(loss_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, b) with one row per state array: image-anchored rows first, then text-anchored."""
    image, text = loss_fn.image_state, loss_fn.text_state
    return torch.cat([image.u, text.u]), torch.cat([image.b, text.b])


# --- registry and construction -----------------------------------------------------------------


def test_registered_with_defaults_and_views_flag():
    assert {"amclr", "xamclr"} <= set(LOSS_NAMES)
    common = {"temperature": 0.01, "gamma": 0.8, "eps": 1e-8}
    aug = {"weight_image_aug": 1.0, "weight_text_aug": 1.0, "weight_both_aug": 1.0}
    intra = {"weight_intra_image": 1.0, "weight_intra_text": 1.0}
    assert loss_defaults("amclr") == {**common, **aug, "shared_u": False}
    assert loss_defaults("xamclr") == {**common, **aug, **intra, "shared_u": False}
    assert build_loss("amclr", num_samples=3).needs_views is True
    assert build_loss("xamclr", num_samples=3).needs_views is True


@pytest.mark.parametrize("name", ["amclr", "xamclr"])
def test_term_order_and_weights(name):
    hparams = {k: v for k, v in WEIGHTS.items() if k in loss_defaults(name)}
    loss_fn = build_loss(name, num_samples=3, **hparams)
    names = [f"{a}_to_{c}" for a, c in TERMS[name]]
    assert list(loss_fn.term_names) == names
    assert loss_fn.term_weights == {
        f"{a}_to_{c}": term_weight(a, c, hparams) for a, c in TERMS[name]
    }


@pytest.mark.parametrize(
    ("hparam", "value"),
    [("temperature", 0.0), ("gamma", 0.0), ("gamma", 1.5), ("eps", -1.0), ("weight_both_aug", -1)],
)
def test_rejects_invalid_hyperparameters(hparam, value):
    with pytest.raises(ValueError, match=hparam):
        build_loss("amclr", num_samples=4, **{hparam: value})


@pytest.mark.parametrize("name", ["amclr", "xamclr"])
def test_state_arrays_per_term_or_shared(name):
    per_term = build_loss(name, num_samples=5)
    shared = build_loss(name, num_samples=5, shared_u=True)
    terms = len(TERMS[name])
    keys = ["image_state.u", "image_state.b", "text_state.u", "text_state.b"]
    assert {k: v.shape for k, v in per_term.state_dict().items()} == {
        key: (terms // 2, 5) for key in keys
    }
    assert {k: v.shape for k, v in shared.state_dict().items()} == {key: (1, 5) for key in keys}


# --- against the naive reference ---------------------------------------------------------------


def growing_shift_views(step: int) -> dict:
    """``growing_shift_batch`` with augmented views near the originals (see loss_references)."""
    image, text = growing_shift_batch(step)
    image_aug = F.normalize(image + 0.02 * unit_rows(4, 6, seed=700 + step), dim=-1)
    text_aug = F.normalize(text + 0.02 * unit_rows(4, 6, seed=800 + step), dim=-1)
    return {"image": image, "image_aug": image_aug, "text": text, "text_aug": text_aug}


@pytest.mark.parametrize(
    ("schedule", "batches", "tau", "eps"),
    [
        (SCHEDULE, drifting_views, 0.05, 1e-8),
        (SCHEDULE, drifting_views, 0.05, 0.0),
        (GROWING_SHIFT, growing_shift_views, 0.01, 1e-8),
    ],
    ids=["drifting", "drifting_eps0", "growing_shift"],
)
@pytest.mark.parametrize("shared", [False, True], ids=["per_term", "shared_u"])
@pytest.mark.parametrize("name", ["amclr", "xamclr"])
def test_matches_the_unshifted_reference(name, shared, schedule, batches, tau, eps):
    """Values, gradients and the reference's u (u·exp(b), per term or in its two shared
    arrays) for any ε, also once b has grown and U is of the order of ε (``growing_shift``)."""
    gamma = 0.7
    hparams = {k: v for k, v in WEIGHTS.items() if k in loss_defaults(name)}
    loss_fn = build_loss(
        name, num_samples=8, temperature=tau, gamma=gamma, eps=eps, shared_u=shared, **hparams
    ).double()
    reference = NaiveAmCLR(TERMS[name], hparams, tau, gamma, eps, shared=shared)
    keys = ["image", "text"] if shared else list(range(len(TERMS[name])))
    b_first = None
    for step, (epoch, index) in enumerate(schedule):
        if epoch == 1 and b_first is None:
            b_first = state_rows(loss_fn)[1].clone()
        ours, theirs = leaves(batches(step)), leaves(batches(step))
        out = call(loss_fn, ours, index, epoch)
        ref_loss, ref_objective, ref_terms = reference.step(theirs, index, epoch)
        out.loss.backward()
        ref_loss.backward()

        torch.testing.assert_close(out.loss, ref_loss, rtol=1e-10, atol=1e-14)
        assert out.objective.item() == pytest.approx(ref_objective, rel=1e-10)
        for term_name, value in zip(loss_fn.term_names, ref_terms, strict=True):
            assert out[term_name].item() == pytest.approx(value, rel=1e-10, abs=1e-12)
        for view in VIEWS:
            torch.testing.assert_close(ours[view].grad, theirs[view].grad, rtol=1e-10, atol=1e-14)
        u, b = state_rows(loss_fn)
        for row, key in enumerate(keys):
            for n in index:
                unshifted = u[row, n].item() * math.exp(b[row, n].item())
                assert unshifted == pytest.approx(reference.mean.value[key, n], rel=1e-10)
    b = state_rows(loss_fn)[1]
    assert (b > 10).any() if schedule is GROWING_SHIFT else (b > b_first).any()  # rescale ran


@pytest.mark.parametrize("name", ["amclr", "xamclr"])
def test_shared_u_in_epoch_zero_keeps_the_last_terms_estimate(name):
    """Sequential updates with γ = 1: each shared row ends as the estimate of its modality's last
    term (x'→t' / x'→x for images, t'→x' / t'→t for texts) and its shift as the maximum."""
    views, index = drifting_views(2), torch.tensor([6, 1, 4, 3])
    per_term = build_loss(name, num_samples=8).double()
    shared = build_loss(name, num_samples=8, shared_u=True).double()
    for loss_fn in (per_term, shared):
        call(loss_fn, views, index.tolist(), 0)
    terms = len(TERMS[name])
    last = {0: terms // 2 - 1, 1: terms - 1}
    u, b = state_rows(per_term)
    u_shared, b_shared = state_rows(shared)
    for row in (0, 1):
        group = slice(row * terms // 2, (row + 1) * terms // 2)
        b_max = b[group, index].amax(dim=0)
        torch.testing.assert_close(b_shared[row, index], b_max)
        expected = u[last[row], index] * torch.exp(b[last[row], index] - b_max)
        torch.testing.assert_close(u_shared[row, index], expected)


# --- known answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["amclr", "xamclr"])
def test_zero_augmented_weights_reduce_to_sogclr(name):
    tau, gamma = 0.05, 0.8
    zero = {k: 0.0 for k in loss_defaults(name) if k.startswith("weight_")}
    loss_fn = build_loss(name, num_samples=8, temperature=tau, gamma=gamma, **zero).double()
    sogclr = build_loss("sogclr", num_samples=8, temperature=tau, gamma=gamma).double()
    rows = [loss_fn.term_names.index(n) for n in ("image_to_text", "text_to_image")]
    for step, (epoch, index) in enumerate(SCHEDULE):
        ours, theirs = leaves(drifting_views(step)), leaves(drifting_views(step))
        out = call(loss_fn, ours, index, epoch)
        expected = sogclr(theirs["image"], theirs["text"], torch.tensor(index), epoch=epoch)
        out["loss"].backward()
        expected["loss"].backward()
        torch.testing.assert_close(out["loss"], expected["loss"])
        torch.testing.assert_close(out["objective"], expected["objective"])
        torch.testing.assert_close(ours["image"].grad, theirs["image"].grad)
        torch.testing.assert_close(ours["text"].grad, theirs["text"].grad)
        assert torch.all(ours["image_aug"].grad == 0)
        assert torch.all(ours["text_aug"].grad == 0)
        u, b = state_rows(loss_fn)
        for row, state in zip(rows, (sogclr.image_state, sogclr.text_state), strict=True):
            torch.testing.assert_close(u[row], state.u)
            torch.testing.assert_close(b[row], state.b)


def test_amclr_with_views_equal_to_originals_is_four_sogclrs():
    """x' = x, t' = t, unit weights: every term is SogCLR's image or text term, so the value,
    the objective and the total gradient along x = x' (t = t') are 4× SogCLR's."""
    tau, gamma = 0.05, 0.8
    loss_fn = build_loss("amclr", num_samples=8, temperature=tau, gamma=gamma).double()
    sogclr = build_loss("sogclr", num_samples=8, temperature=tau, gamma=gamma).double()
    for step, (epoch, index) in enumerate(SCHEDULE):
        base = drifting_views(step)
        same = {"image": base["image"], "text": base["text"]}
        ours = leaves({**same, "image_aug": base["image"], "text_aug": base["text"]})
        theirs = leaves(same)
        out = call(loss_fn, ours, index, epoch)
        expected = sogclr(theirs["image"], theirs["text"], torch.tensor(index), epoch=epoch)
        out["loss"].backward()
        expected["loss"].backward()
        torch.testing.assert_close(out["loss"], 4 * expected["loss"])
        torch.testing.assert_close(out["objective"], 4 * expected["objective"])
        torch.testing.assert_close(
            ours["image"].grad + ours["image_aug"].grad, 4 * theirs["image"].grad
        )
        torch.testing.assert_close(
            ours["text"].grad + ours["text_aug"].grad, 4 * theirs["text"].grad
        )


@pytest.mark.parametrize("shared", [False, True], ids=["per_term", "shared_u"])
@pytest.mark.parametrize("name", ["amclr", "xamclr"])
def test_stays_finite_where_the_unshifted_reference_overflows(name, shared):
    # τ = 0.01 and negatives beating the positive by up to 2: exp(200) overflows fp32
    views = {v: unit_rows(6, 4, seed=s).float() for s, v in enumerate(VIEWS)}
    views = leaves(views)
    loss_fn = build_loss(name, num_samples=6, shared_u=shared)
    for epoch in (0, 1):
        out = call(loss_fn, views, list(range(6)), epoch)
        out["loss"].backward()
        assert all(torch.isfinite(v) for v in (out.loss, out.objective, *out.terms.values()))
        assert all(torch.isfinite(views[v].grad).all() for v in VIEWS)


# --- contract ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["amclr", "xamclr"])
@pytest.mark.parametrize("missing", ["image_aug_emb", "text_aug_emb"])
def test_missing_views_raise_a_one_line_error(name, missing):
    views = drifting_views(0)
    kwargs = {"image_aug_emb": views["image_aug"], "text_aug_emb": views["text_aug"]}
    kwargs[missing] = None
    loss_fn = build_loss(name, num_samples=8)
    with pytest.raises(ValueError, match="augmented views") as error:
        loss_fn(views["image"], views["text"], torch.arange(4), **kwargs)
    assert "\n" not in str(error.value)


def test_mismatched_view_shapes_and_single_pair_batches_raise():
    views = drifting_views(0)
    loss_fn = build_loss("amclr", num_samples=8)
    with pytest.raises(ValueError, match="one shape"):
        loss_fn(
            views["image"],
            views["text"],
            torch.arange(4),
            image_aug_emb=views["image_aug"][:3],
            text_aug_emb=views["text_aug"],
        )
    one = {k: v[:1] for k, v in views.items()}
    with pytest.raises(ValueError, match="at least 2"):
        call(loss_fn, one, [0], 0)


@pytest.mark.parametrize("shared", [False, True], ids=["per_term", "shared_u"])
@pytest.mark.parametrize("name", ["amclr", "xamclr"])
def test_state_round_trips_through_state_dict(name, shared):
    first = build_loss(name, num_samples=8, shared_u=shared).double()
    for step, (epoch, index) in enumerate(SCHEDULE[:3]):
        call(first, drifting_views(step), index, epoch)
    state = first.state_dict()
    assert set(state) == {"image_state.u", "image_state.b", "text_state.u", "text_state.b"}
    second = build_loss(name, num_samples=8, shared_u=shared).double()
    second.load_state_dict(state)
    epoch, index = SCHEDULE[3]
    expected = call(first, drifting_views(3), index, epoch)
    actual = call(second, drifting_views(3), index, epoch)
    assert_same_output(expected, actual)
    assert all(torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in state)


@pytest.mark.parametrize("name", ["amclr", "xamclr"])
def test_float32_embeddings_against_float64(name):
    """The default float32 module agrees with the float64 computation to float32 precision
    (τ = 0.1: at τ = 0.01 the estimates of far-apart negatives underflow in float32)."""
    views, index = drifting_views(1), [0, 1, 2, 3]
    low_fn = build_loss(name, num_samples=8, temperature=0.1)
    low = call(low_fn, {k: v.float() for k, v in views.items()}, index, 0)
    high = call(build_loss(name, num_samples=8, temperature=0.1).double(), views, index, 0)
    for key in ("loss", "objective", *high.terms):
        torch.testing.assert_close(low[key].double(), high[key], rtol=1e-4, atol=1e-5)
