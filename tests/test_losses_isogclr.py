"""iSogCLR and its TempGenerator variant against naive references written here from losses.md
§3.2–§3.4.

The references loop over anchors and candidates in plain Python (float64) and share no code with
``trainables.losses``; gradients, objectives and per-sample state (u, b, τ, m) must match at every
step of a schedule over two epochs with overlapping batches.
"""

import math
from collections import defaultdict

import pytest
import torch
import torch.nn.functional as F
from loss_references import (
    GROWING_SHIFT,
    UnshiftedMean,
    assert_same_output,
    dot,
    growing_shift_batch,
    leaves,
    unit_rows,
)

from trainables.losses import build_loss, loss_defaults

TINY = torch.finfo(torch.float64).tiny


def clip(x: float, low: float, high: float) -> float:
    return min(max(x, low), high)


class NaiveRGCL:
    """§3.3 per anchor and direction, unshifted: U, w = exp(z)/(U + ε), surrogate,
    G = log U + ρ − (1/(B−1)) Σ_{j≠i} w_ij z_ij, then (optionally) m and τ.

    ``step`` takes the temperatures of the batch's anchors per direction (``taus``, lists of
    floats) when they come from outside (TempGenerator); otherwise it uses and updates its own
    per-sample τ and momentum. ``negatives_only=False`` keeps the positive's exp(0) = 1 in the
    batch estimate (still divided by B − 1); ``first_epoch_gamma_one``: γ = 1 in epoch 0.
    """

    def __init__(
        self,
        *,
        gamma,
        eps,
        rho,
        tau_init=None,
        tau_min=None,
        tau_max=None,
        eta=None,
        beta=None,
        grad_clip=None,
        negatives_only=True,
        first_epoch_gamma_one=True,
    ):
        self.gamma, self.eps, self.rho = gamma, eps, rho
        self.tau_min, self.tau_max, self.eta, self.beta = tau_min, tau_max, eta, beta
        self.grad_clip = grad_clip
        self.negatives_only, self.first_epoch_gamma_one = negatives_only, first_epoch_gamma_one
        self.mean = UnshiftedMean()
        self.m = {d: defaultdict(float) for d in ("image", "text")}
        self.tau = {d: defaultdict(lambda: tau_init) for d in ("image", "text")}
        self.grads = {"image": [], "text": []}  # G of the last step, per anchor
        self.clipped = self.hit_min = self.hit_max = 0

    def step(self, image, text, index, epoch, taus=None):
        batch = len(index)
        s = [[dot(image[i], text[j]) for j in range(batch)] for i in range(batch)]
        gamma = 1.0 if epoch == 0 and self.first_epoch_gamma_one else self.gamma
        loss, objective = 0.0, 0.0
        for direction in ("image", "text"):
            m, tau = self.m[direction], self.tau[direction]
            self.grads[direction] = []
            for i in range(batch):
                if direction == "image":
                    h = [s[i][j] - s[i][i] for j in range(batch)]
                else:
                    h = [s[j][i] - s[i][i] for j in range(batch)]
                k = index[i]
                t = tau[k] if taus is None else taus[direction][i]
                z = [h_ij.item() / t for h_ij in h]
                negatives = [j for j in range(batch) if j != i]
                averaged = negatives if self.negatives_only else range(batch)
                g = sum(math.exp(z[j]) for j in averaged) / (batch - 1)
                u = self.mean.update((direction, k), g, gamma)
                w = {j: math.exp(z[j]) / (u + self.eps) for j in negatives}
                for j in negatives:
                    loss = loss + w[j] * h[j] / (batch * (batch - 1))
                grad = math.log(u) + self.rho - sum(w[j] * z[j] for j in negatives) / (batch - 1)
                self.grads[direction].append(grad)
                objective += t * (math.log(u) + self.rho) / batch
                if taus is None:
                    self.clipped += abs(grad) > self.grad_clip
                    clipped = clip(grad, -self.grad_clip, self.grad_clip)
                    m[k] = (1 - self.beta) * m[k] + self.beta * clipped
                    tau[k] = clip(t - self.eta * m[k], self.tau_min, self.tau_max)
                    self.hit_min += tau[k] == self.tau_min
                    self.hit_max += tau[k] == self.tau_max
        return loss, objective


def assert_unshifted_state(state, reference, index) -> None:
    """u·exp(b) of the loss's two-direction estimator equals the reference's U on ``index``."""
    for row, direction in enumerate(("image", "text")):
        for k in index:
            unshifted = state.u[row, k].item() * math.exp(state.b[row, k].item())
            assert unshifted == pytest.approx(reference.mean.value[direction, k], rel=1e-10)


SCHEDULE = [  # (epoch, dataset indices): each index once per epoch, batches overlap across epochs
    (0, [0, 1, 2, 3]),
    (0, [4, 5, 6, 7]),
    (1, [5, 2, 7, 0]),
    (1, [3, 6, 1, 4]),
    (2, [1, 0, 4, 5]),
    (2, [6, 7, 3, 2]),
]


def drifting_batch(step: int, batch: int = 4, dim: int = 6):
    """Texts drift away from their images as ``step`` grows, so h (and the shift b) grows."""
    image = unit_rows(batch, dim, seed=10 + step)
    noise = unit_rows(batch, dim, seed=100 + step)
    mix = 0.2 + 0.15 * step
    return image, F.normalize((1 - mix) * image + mix * noise, dim=-1)


# --- isogclr ----------------------------------------------------------------------------------

ISOGCLR = {
    "tau_init": 0.03125,  # exact in float32: the buffers start in float32
    "tau_min": 0.02,
    "tau_max": 0.05,
    "rho": 2.0,
    "eta": 0.01,
    "beta": 0.9,
    "grad_clip": 2.0,
    "gamma": 0.8,
    "eps": 1e-8,
}


def test_isogclr_defaults():
    assert loss_defaults("isogclr") == {
        "tau_init": 0.01,
        "tau_min": 0.005,
        "tau_max": 0.05,
        "rho": 8.0,
        "eta": 0.01,
        "beta": 0.9,
        "grad_clip": 5.0,
        "gamma": 0.8,
        "eps": 1e-14,
        "negatives_only": True,
        "first_epoch_gamma_one": True,
    }


ESTIMATORS = {  # the course code's iSogCLR_New_Loss; the paper code's SogCLR_DRO_Loss
    "course": {},
    "paper": {"negatives_only": False, "first_epoch_gamma_one": False},
}


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_isogclr_matches_the_unshifted_reference_over_epochs(estimator):
    hparams = {**ISOGCLR, **ESTIMATORS[estimator]}
    loss_fn = build_loss("isogclr", num_samples=8, **hparams).double()
    reference = NaiveRGCL(**hparams)
    for step, (epoch, index) in enumerate(SCHEDULE):
        image_a, text_a, image_b, text_b = leaves(*drifting_batch(step) * 2)
        tau_used = {d: [reference.tau[d][k] for k in index] for d in ("image", "text")}
        out = loss_fn(image_a, text_a, torch.tensor(index), epoch=epoch)
        ref_loss, ref_objective = reference.step(image_b, text_b, index, epoch)
        out["loss"].backward()
        ref_loss.backward()

        torch.testing.assert_close(out["loss"], ref_loss)
        assert out["objective"].item() == pytest.approx(ref_objective, rel=1e-10)
        assert out["tau_image"].item() == pytest.approx(sum(tau_used["image"]) / 4, rel=1e-12)
        assert out["tau_text"].item() == pytest.approx(sum(tau_used["text"]) / 4, rel=1e-12)
        torch.testing.assert_close(image_a.grad, image_b.grad)
        torch.testing.assert_close(text_a.grad, text_b.grad)
        assert_unshifted_state(loss_fn.state, reference, index)
        for row, direction in enumerate(("image", "text")):
            for k in range(8):
                for name in ("m", "tau"):
                    expected = getattr(reference, name)[direction][k]
                    actual = getattr(loss_fn.state, name)[row, k].item()
                    assert actual == pytest.approx(expected, rel=1e-10, abs=1e-15), (name, k)
    if estimator != "course":
        return
    # the schedule exercised G clipping, both τ bounds and interior values
    assert reference.clipped > 0
    assert reference.hit_min > 0
    assert reference.hit_max > 0
    taus = loss_fn.state.tau
    assert ((taus > ISOGCLR["tau_min"]) & (taus < ISOGCLR["tau_max"])).any()
    grads = [abs(g) for g in reference.grads["image"] + reference.grads["text"]]
    assert min(grads) < ISOGCLR["grad_clip"]


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_isogclr_matches_the_unshifted_reference_once_the_shift_has_grown(estimator):
    """One unaligned step lifts b, then aligned steps on the same indices make U of the order
    of ε: the weights must stay exp(z)/(U + ε) (ε in shifted units would damp them)."""
    hparams = {**ISOGCLR, "tau_init": 2**-7, "tau_min": 0.005, "eps": 1e-8}  # τ exact in fp32
    hparams |= ESTIMATORS[estimator]
    loss_fn = build_loss("isogclr", num_samples=4, **hparams).double()
    reference = NaiveRGCL(**hparams)
    for step, (epoch, index) in enumerate(GROWING_SHIFT):
        image_a, text_a, image_b, text_b = leaves(*growing_shift_batch(step) * 2)
        out = loss_fn(image_a, text_a, torch.tensor(index), epoch=epoch)
        ref_loss, ref_objective = reference.step(image_b, text_b, index, epoch)
        out.loss.backward()
        ref_loss.backward()
        assert out.objective.item() == pytest.approx(ref_objective, rel=1e-10)
        torch.testing.assert_close(image_a.grad, image_b.grad, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(text_a.grad, text_b.grad, rtol=1e-10, atol=1e-14)
        assert_unshifted_state(loss_fn.state, reference, index)
        for row, direction in enumerate(("image", "text")):
            for k in index:
                expected = reference.tau[direction][k]
                assert loss_fn.state.tau[row, k].item() == pytest.approx(expected, rel=1e-10)
    assert (loss_fn.state.b > 10).any()


def test_isogclr_first_step_gradient_is_that_of_the_per_sample_tau_global_loss():
    image, text = unit_rows(5, 4, seed=4), unit_rows(5, 4, seed=5)
    image_a, text_a, image_b, text_b = leaves(image, text, image, text)
    tau, rho = 0.125, 2.0
    loss_fn = build_loss(
        "isogclr", num_samples=5, tau_init=tau, tau_max=0.2, rho=rho, eps=0.0
    ).double()
    out = loss_fn(image_a, text_a, torch.tensor([4, 0, 3, 1, 2]), epoch=0)

    s = image_b @ text_b.T
    negatives = ~torch.eye(5, dtype=torch.bool)
    estimate = 0.0
    for h in (s - s.diag()[:, None], s.T - s.diag()[:, None]):
        for i in range(5):
            mean_exp = torch.exp(h[i][negatives[i]] / tau).mean()
            estimate = estimate + (tau * torch.log(mean_exp) + tau * rho) / 5
    out["loss"].backward()
    estimate.backward()

    torch.testing.assert_close(out["objective"], estimate.detach())
    torch.testing.assert_close(image_a.grad, image_b.grad)
    torch.testing.assert_close(text_a.grad, text_b.grad)
    torch.testing.assert_close(out["image_to_text"] + out["text_to_image"], out["objective"])


def test_isogclr_with_eta_zero_is_sogclr():
    sogclr = build_loss("sogclr", num_samples=8, temperature=0.0625).double()
    isogclr = build_loss(
        "isogclr", num_samples=8, tau_init=0.0625, tau_max=0.1, eta=0.0, rho=3.0, eps=1e-8
    ).double()
    for step, (epoch, index) in enumerate(SCHEDULE):
        image_a, text_a, image_b, text_b = leaves(*drifting_batch(step) * 2)
        expected = sogclr(image_a, text_a, torch.tensor(index), epoch=epoch)
        actual = isogclr(image_b, text_b, torch.tensor(index), epoch=epoch)
        expected["loss"].backward()
        actual["loss"].backward()
        torch.testing.assert_close(actual["loss"], expected["loss"])
        torch.testing.assert_close(actual["objective"], expected["objective"] + 2 * 0.0625 * 3.0)
        torch.testing.assert_close(image_b.grad, image_a.grad)
        torch.testing.assert_close(text_b.grad, text_a.grad)
    for row, direction in enumerate(("image_state", "text_state")):
        for name in ("u", "b"):
            torch.testing.assert_close(
                getattr(isogclr.state, name)[row], getattr(getattr(sogclr, direction), name)
            )
    assert torch.all(isogclr.state.tau == 0.0625)


def test_isogclr_tau_stays_within_bounds():
    tau_min, tau_max = 0.005, 0.05
    loss_fn = build_loss("isogclr", num_samples=64, eta=0.5, rho=4.0, grad_clip=50.0)
    generator = torch.Generator().manual_seed(0)
    for step in range(30):
        index = torch.randperm(64, generator=generator)[:16]
        image = F.normalize(torch.randn(16, 8, generator=generator), dim=-1)
        text = F.normalize(
            image + (step % 5) * 0.3 * torch.randn(16, 8, generator=generator), dim=-1
        )
        out = loss_fn(image, text, index, epoch=step // 10)
        assert torch.isfinite(out["objective"])
        assert torch.all((loss_fn.state.tau >= tau_min) & (loss_fn.state.tau <= tau_max))
    taus = loss_fn.state.tau
    assert (taus == tau_min).any() and (taus == tau_max).any()


@pytest.mark.parametrize(
    ("hparams", "match"),
    [
        ({"tau_min": 0.05, "tau_max": 0.05}, "tau_min < tau_max"),
        ({"tau_min": 0.1, "tau_max": 0.05}, "tau_min < tau_max"),
        ({"tau_min": 0.0}, "tau_min < tau_max"),
        ({"tau_init": 0.001}, "tau_init"),
        ({"tau_init": 0.5}, "tau_init"),
        ({"eta": -1.0}, "eta"),
        ({"beta": 0.0}, "beta"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"gamma": 1.5}, "gamma"),
        ({"rho": -1.0}, "rho"),
        ({"eps": -1.0}, "eps"),
    ],
)
def test_isogclr_rejects_invalid_hyperparameters(hparams, match):
    with pytest.raises(ValueError, match=match) as error:
        build_loss("isogclr", num_samples=4, **hparams)
    assert "\n" not in str(error.value)


def test_isogclr_state_round_trips_through_state_dict():
    first = build_loss("isogclr", num_samples=8, **ISOGCLR).double()
    for step, (epoch, index) in enumerate(SCHEDULE[:4]):
        first(*drifting_batch(step), torch.tensor(index), epoch=epoch)
    state = first.state_dict()
    assert set(state) == {"state.u", "state.b", "state.tau", "state.m"}
    assert all(buffer.shape == (2, 8) for buffer in state.values())

    second = build_loss("isogclr", num_samples=8, **ISOGCLR).double()
    second.load_state_dict(state)
    for step, (epoch, index) in enumerate(SCHEDULE[4:], start=4):
        batch = drifting_batch(step)
        expected = first(*batch, torch.tensor(index), epoch=epoch)
        actual = second(*batch, torch.tensor(index), epoch=epoch)
        assert_same_output(expected, actual)
    assert all(torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in state)


def test_isogclr_rejects_a_batch_without_negatives():
    with pytest.raises(ValueError, match="at least 2"):
        build_loss("isogclr", num_samples=4)(torch.eye(1, 3), torch.eye(1, 3), torch.tensor([0]))


# --- isogclr_tempnet --------------------------------------------------------------------------


def naive_generator(gen, x: torch.Tensor, tau_min: float, tau_max: float) -> torch.Tensor:
    """§3.4 without dropout, from the generator's weights: one τ per row of ``x``."""
    w1, c1 = gen.proj.weight, gen.proj.bias
    w2, c2 = gen.prototypes.weight, gen.prototypes.bias
    w3, c3 = gen.head.weight, gen.head.bias
    d, big_m = w1.shape[0], w2.shape[0]
    taus = []
    for row in x:
        z = [torch.sigmoid(dot(w1[r], row) + c1[r]) for r in range(d)]
        p = [sum(w2[k][r] * z[r] for r in range(d)) + c2[k] for k in range(big_m)]
        exps = [torch.exp(p[k] / math.sqrt(d)) for k in range(big_m)]
        a = [exps[k] / sum(exps) for k in range(big_m)]
        q = [torch.sigmoid(a[k] * p[k]) for k in range(big_m)]
        logit = sum(w3[0][k] * q[k] for k in range(big_m)) + c3[0]
        taus.append(tau_min + (tau_max - tau_min) * torch.sigmoid(0.2 * logit))
    return torch.stack(taus)


TEMPNET = {
    "tau_min": 0.01,
    "tau_max": 0.06,
    "rho": 2.0,
    "gamma": 0.7,
    "eps": 1e-8,
    "embed_dim": 6,
    "hidden_dim": 5,
    "dropout": 0.0,
}


def test_tempnet_defaults():
    assert loss_defaults("isogclr_tempnet") == {
        "tau_min": 0.005,
        "tau_max": 0.05,
        "rho": 8.0,
        "gamma": 0.8,
        "eps": 1e-14,
        "embed_dim": 256,
        "hidden_dim": 256,
        "dropout": 0.5,
        "tempnet_lr_mult": 0.1,
        "tempnet_weight_decay": 1e-3,
    }


def test_tempnet_follows_the_contract():
    loss_fn = build_loss("isogclr_tempnet", num_samples=10, embed_dim=8)
    image, text = leaves(unit_rows(4, 8, seed=0).float(), unit_rows(4, 8, seed=1).float())
    out = loss_fn(image, text, torch.tensor([7, 2, 0, 9]), epoch=0)
    assert {"tau_image", "tau_text"} <= set(out.terms)
    values = [out.loss, out.objective, *out.terms.values()]
    assert all(value.ndim == 0 and torch.isfinite(value) for value in values)
    assert not out.objective.requires_grad
    assert all(not value.requires_grad for value in out.terms.values())
    out["loss"].backward()
    assert image.grad is not None and text.grad is not None
    assert all(p.grad is not None for p in loss_fn.parameters())


def test_tempnet_generator_output_is_within_bounds():
    torch.manual_seed(0)
    loss_fn = build_loss("isogclr_tempnet", num_samples=4, embed_dim=16, hidden_dim=32)
    for generator in (loss_fn.image_generator, loss_fn.text_generator):
        for scale in (1.0, 100.0):
            tau = generator(scale * torch.randn(64, 16))
            assert tau.shape == (64,)
            assert torch.all((tau >= 0.005) & (tau <= 0.05))
        with torch.no_grad():
            generator.head.weight.fill_(1e4)  # saturates the output sigmoid at the bounds
        for sign in (1.0, -1.0):
            generator.head.bias.data.fill_(sign * 1e6)
            tau = generator(torch.randn(8, 16))
            assert torch.all((tau >= 0.005) & (tau <= 0.05))


@pytest.mark.parametrize(
    ("schedule", "batches", "bounds"),
    [
        (SCHEDULE, drifting_batch, (0.01, 0.06)),
        (GROWING_SHIFT, growing_shift_batch, (0.005, 0.012)),
    ],
    ids=["drifting", "growing_shift"],
)
def test_tempnet_matches_the_unshifted_reference_over_epochs(schedule, batches, bounds):
    """``growing_shift``: τ near 0.009 after b has grown, so U is of the order of ε."""
    torch.manual_seed(0)
    hparams = {**TEMPNET, "tau_min": bounds[0], "tau_max": bounds[1]}
    loss_fn = build_loss("isogclr_tempnet", num_samples=8, **hparams).double()
    reference = NaiveRGCL(gamma=TEMPNET["gamma"], eps=TEMPNET["eps"], rho=TEMPNET["rho"])
    for step, (epoch, index) in enumerate(schedule):
        image_a, text_a, image_b, text_b = leaves(*batches(step) * 2)
        loss_fn.zero_grad()
        out = loss_fn(image_a, text_a, torch.tensor(index), epoch=epoch)
        out["loss"].backward()
        generator_grads = {name: p.grad.clone() for name, p in loss_fn.named_parameters()}

        # reference: τ from the equations, the SogCLR-with-per-sample-τ surrogate and G
        tau_image = naive_generator(loss_fn.image_generator, image_b.detach(), *bounds)
        tau_text = naive_generator(loss_fn.text_generator, text_b.detach(), *bounds)
        taus = {"image": tau_image.tolist(), "text": tau_text.tolist()}
        ref_loss, ref_objective = reference.step(image_b, text_b, index, epoch, taus=taus)
        ref_loss.backward()
        torch.testing.assert_close(image_a.grad, image_b.grad, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(text_a.grad, text_b.grad, rtol=1e-10, atol=1e-14)
        assert out["objective"].item() == pytest.approx(ref_objective, rel=1e-10)
        assert out["tau_image"].item() == pytest.approx(sum(taus["image"]) / 4, rel=1e-10)
        assert_unshifted_state(loss_fn.state, reference, index)

        # the generators receive exactly the gradient of mean sg(G)·τ + mean sg(G')·τ'
        params = dict(loss_fn.named_parameters())
        temperature_term = (
            sum(g * t for g, t in zip(reference.grads["image"], tau_image, strict=True)) / 4
            + sum(g * t for g, t in zip(reference.grads["text"], tau_text, strict=True)) / 4
        )
        expected = torch.autograd.grad(temperature_term, list(params.values()))
        for (name, _), grad in zip(params.items(), expected, strict=True):
            torch.testing.assert_close(generator_grads[name], grad, msg=name)
            assert grad.abs().sum() > 0, name


def test_tempnet_dropout_is_on_in_train_mode_only():
    torch.manual_seed(0)
    loss_fn = build_loss("isogclr_tempnet", num_samples=4, embed_dim=8, dropout=0.5)
    x = unit_rows(6, 8, seed=3).float()
    assert not torch.equal(loss_fn.image_generator(x), loss_fn.image_generator(x))
    loss_fn.eval()
    assert torch.equal(loss_fn.image_generator(x), loss_fn.image_generator(x))


def test_tempnet_optimizer_groups_hold_every_generator_parameter():
    loss_fn = build_loss(
        "isogclr_tempnet",
        num_samples=4,
        embed_dim=8,
        hidden_dim=4,
        tempnet_lr_mult=0.2,
        tempnet_weight_decay=0.05,
    )
    groups = loss_fn.optimizer_groups(1e-3)
    assert len(groups) == 1
    assert groups[0]["lr"] == pytest.approx(2e-4)
    assert groups[0]["weight_decay"] == 0.05
    names = {id(p): n for n, p in loss_fn.named_parameters()}
    assert sorted(names[id(p)] for p in groups[0]["params"]) == sorted(names.values())
    assert len(names) == 2 * 6  # weight and bias of proj, prototypes and head per generator
    torch.optim.AdamW(groups, lr=1e-3)  # a valid parameter group


def test_tempnet_state_round_trips_through_state_dict():
    first = build_loss("isogclr_tempnet", num_samples=8, **TEMPNET).double()
    for step, (epoch, index) in enumerate(SCHEDULE[:3]):
        first(*drifting_batch(step), torch.tensor(index), epoch=epoch)
    state = first.state_dict()
    assert state["state.u"].shape == state["state.b"].shape == (2, 8)
    assert {k.split(".")[0] for k in state} == {"state", "image_generator", "text_generator"}
    second = build_loss("isogclr_tempnet", num_samples=8, **TEMPNET).double()
    second.load_state_dict(state)
    epoch, index = SCHEDULE[3]
    batch = drifting_batch(3)
    expected = first(*batch, torch.tensor(index), epoch=epoch)
    actual = second(*batch, torch.tensor(index), epoch=epoch)
    assert_same_output(expected, actual)


@pytest.mark.parametrize(
    ("hparams", "match"),
    [
        ({"tau_min": 0.05, "tau_max": 0.05}, "tau_min < tau_max"),
        ({"tau_min": 0.06}, "tau_min < tau_max"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"embed_dim": 2.5}, "embed_dim"),
        ({"hidden_dim": 0}, "hidden_dim"),
        ({"dropout": 1.0}, "dropout"),
        ({"tempnet_lr_mult": 0.0}, "tempnet_lr_mult"),
        ({"tempnet_weight_decay": -1.0}, "tempnet_weight_decay"),
    ],
)
def test_tempnet_rejects_invalid_hyperparameters(hparams, match):
    with pytest.raises(ValueError, match=match) as error:
        build_loss("isogclr_tempnet", num_samples=4, **hparams)
    assert "\n" not in str(error.value)


def test_tempnet_names_an_embedding_dimension_mismatch():
    loss_fn = build_loss("isogclr_tempnet", num_samples=4, embed_dim=16)
    with pytest.raises(ValueError, match=r"embed_dim=16.*dim 8"):
        loss_fn(unit_rows(4, 8, seed=0).float(), unit_rows(4, 8, seed=1).float(), torch.arange(4))
