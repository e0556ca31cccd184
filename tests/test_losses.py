"""Losses against naive references written here from the equations of losses.md §3.1/§3.2.

The references loop over anchors and candidates in plain Python (float64) and share no code with
``trainables.losses``; values, per-sample state and gradients must match at every step.
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
    leaves,
    naive_clip,
    unit_rows,
)

from trainables.losses import LOSS_NAMES, build_loss, loss_defaults


class NaiveSogCLR:
    """§3.2 per anchor and direction, unshifted: U, w = exp(z)/(U + ε), surrogate, τ log U."""

    def __init__(self, tau: float, gamma: float, eps: float) -> None:
        self.tau, self.gamma, self.eps = tau, gamma, eps
        self.mean = UnshiftedMean()

    def step(self, image, text, index, epoch):
        batch = len(index)
        s = [[dot(image[i], text[j]) for j in range(batch)] for i in range(batch)]
        gamma = 1.0 if epoch == 0 else self.gamma
        loss, objective = 0.0, 0.0
        for direction in ("image", "text"):
            for i in range(batch):
                if direction == "image":
                    h = [s[i][j] - s[i][i] for j in range(batch)]
                else:
                    h = [s[j][i] - s[i][i] for j in range(batch)]
                negatives = [j for j in range(batch) if j != i]
                exps = [math.exp(h[j].item() / self.tau) for j in negatives]
                u = self.mean.update((direction, index[i]), sum(exps) / len(exps), gamma)
                for j, e in zip(negatives, exps, strict=True):
                    loss = loss + e / (u + self.eps) * h[j] / (batch * (batch - 1))
                objective += self.tau * math.log(u) / batch
        return loss, objective


# --- registry ---------------------------------------------------------------------------------


def test_registry_names_and_defaults():
    assert {"clip", "sogclr"} <= set(LOSS_NAMES)
    assert loss_defaults("clip") == {
        "temperature": 0.01,
        "learnable_temperature": False,
        "min_temperature": 0.001,
        "max_temperature": 0.5,
    }
    assert loss_defaults("sogclr") == {"temperature": 0.01, "gamma": 0.8, "eps": 1e-8}
    loss_fn = build_loss("sogclr", num_samples=3, gamma=0.5)
    assert loss_fn.gamma == 0.5
    assert loss_fn.temperature == 0.01


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match="'nope'") as error:
        build_loss("nope", num_samples=4)
    message = str(error.value)
    assert "\n" not in message
    assert all(name in message for name in LOSS_NAMES)


def test_unknown_hparam_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match="tau") as error:
        build_loss("sogclr", num_samples=4, tau=0.1)
    assert all(name in str(error.value) for name in ("temperature", "gamma", "eps"))


# --- clip -------------------------------------------------------------------------------------


def test_clip_matches_naive_loop_in_value_and_gradient():
    image, text = unit_rows(5, 4, seed=0), unit_rows(5, 4, seed=1)
    tau = 0.07
    image_a, text_a, image_b, text_b = leaves(image, text, image, text)
    out = build_loss("clip", num_samples=5, temperature=tau)(image_a, text_a, torch.arange(5))
    reference = naive_clip(image_b, text_b, tau)
    out["loss"].backward()
    reference.backward()
    torch.testing.assert_close(out["loss"], reference)
    torch.testing.assert_close(out["objective"], reference)
    torch.testing.assert_close(image_a.grad, image_b.grad)
    torch.testing.assert_close(text_a.grad, text_b.grad)


def test_clip_identical_embeddings_give_log_batch_size():
    same = unit_rows(1, 4, seed=0).expand(6, 4)
    out = build_loss("clip", num_samples=6)(same, same, torch.arange(6))
    torch.testing.assert_close(out["loss"], torch.tensor(math.log(6), dtype=torch.float64))
    torch.testing.assert_close(out["image_to_text"], out["text_to_image"])


def test_clip_aligned_orthonormal_pairs_give_zero():
    basis = torch.eye(4)
    out = build_loss("clip", num_samples=4, temperature=0.01)(basis, basis, torch.arange(4))
    assert out["loss"].item() < 1e-30


def test_clip_is_symmetric_in_image_and_text():
    image, text = unit_rows(5, 4, seed=2), unit_rows(5, 4, seed=3)
    loss_fn = build_loss("clip", num_samples=5, temperature=0.1)
    forward, swapped = loss_fn(image, text, torch.arange(5)), loss_fn(text, image, torch.arange(5))
    torch.testing.assert_close(forward["loss"], swapped["loss"])
    torch.testing.assert_close(forward["image_to_text"], swapped["text_to_image"])
    assert not torch.isclose(forward["image_to_text"], forward["text_to_image"])


# --- sogclr -----------------------------------------------------------------------------------

SCHEDULE = [  # (epoch, dataset indices): each index once per epoch, batches overlap across epochs
    (0, [0, 1, 2, 3]),
    (0, [4, 5, 6, 7]),
    (1, [5, 2, 7, 0]),
    (1, [3, 6, 1, 4]),
]


def drifting_batch(step: int, batch: int = 4, dim: int = 6):
    """Texts drift away from their images as ``step`` grows, so h (and the shift b) grows."""
    image = unit_rows(batch, dim, seed=10 + step)
    noise = unit_rows(batch, dim, seed=100 + step)
    mix = 0.2 + 0.25 * step
    return image, F.normalize((1 - mix) * image + mix * noise, dim=-1)


@pytest.mark.parametrize(
    ("schedule", "batches", "tau"),
    [(SCHEDULE, drifting_batch, 0.05), (GROWING_SHIFT, growing_shift_batch, 0.01)],
    ids=["drifting", "growing_shift"],
)
def test_sogclr_matches_the_unshifted_reference(schedule, batches, tau):
    """Values, gradients and state against U, w = exp(h/τ)/(U + ε) with no shift: also once b
    has grown and the aligned batches make U of the order of ε (``growing_shift``)."""
    gamma, eps = 0.8, 1e-8
    loss_fn = build_loss("sogclr", num_samples=8, temperature=tau, gamma=gamma, eps=eps).double()
    reference = NaiveSogCLR(tau, gamma, eps)
    for step, (epoch, index) in enumerate(schedule):
        image_a, text_a, image_b, text_b = leaves(*batches(step) * 2)
        out = loss_fn(image_a, text_a, torch.tensor(index), epoch=epoch)
        ref_loss, ref_objective = reference.step(image_b, text_b, index, epoch)
        out.loss.backward()
        ref_loss.backward()

        torch.testing.assert_close(out.loss, ref_loss, rtol=1e-10, atol=1e-14)
        assert out.objective.item() == pytest.approx(ref_objective, rel=1e-10)
        torch.testing.assert_close(image_a.grad, image_b.grad, rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(text_a.grad, text_b.grad, rtol=1e-10, atol=1e-14)
        for direction, state in (("image", loss_fn.image_state), ("text", loss_fn.text_state)):
            for k in index:
                unshifted = state.u[k].item() * math.exp(state.b[k].item())
                assert unshifted == pytest.approx(reference.mean.value[direction, k], rel=1e-10)
    assert (loss_fn.image_state.b > 10).any()  # the shift is in use


def test_sogclr_gradient_is_that_of_the_tau_scaled_global_loss_in_epoch_zero():
    tau = 0.1
    image, text = unit_rows(5, 4, seed=4), unit_rows(5, 4, seed=5)
    image_a, text_a, image_b, text_b = leaves(image, text, image, text)
    loss_fn = build_loss("sogclr", num_samples=5, temperature=tau, eps=0.0).double()
    out = loss_fn(image_a, text_a, torch.tensor([4, 0, 3, 1, 2]), epoch=0)

    s = image_b @ text_b.T
    negatives = ~torch.eye(5, dtype=torch.bool)
    estimate = 0.0
    for h in (s - s.diag()[:, None], s.T - s.diag()[:, None]):
        for i in range(5):
            mean_exp = torch.exp(h[i][negatives[i]] / tau).mean()
            estimate = estimate + tau * torch.log(mean_exp) / 5
    out["loss"].backward()
    estimate.backward()

    torch.testing.assert_close(out["objective"], estimate.detach())
    torch.testing.assert_close(image_a.grad, image_b.grad)
    torch.testing.assert_close(text_a.grad, text_b.grad)
    assert not torch.isclose(out["loss"].detach(), out["objective"])  # value: not the surrogate


def test_sogclr_state_round_trips_through_state_dict():
    first = build_loss("sogclr", num_samples=8).double()
    for step, (epoch, index) in enumerate(SCHEDULE[:3]):
        first(*drifting_batch(step), torch.tensor(index), epoch=epoch)
    state = first.state_dict()
    assert set(state) == {"image_state.u", "image_state.b", "text_state.u", "text_state.b"}
    assert all(buffer.shape == (8,) for buffer in state.values())

    second = build_loss("sogclr", num_samples=8).double()
    second.load_state_dict(state)
    epoch, index = SCHEDULE[3]
    batch = drifting_batch(3)
    expected = first(*batch, torch.tensor(index), epoch=epoch)
    actual = second(*batch, torch.tensor(index), epoch=epoch)
    assert_same_output(expected, actual)
    assert all(torch.equal(first.state_dict()[k], second.state_dict()[k]) for k in state)


def test_sogclr_rejects_a_batch_without_negatives():
    loss_fn = build_loss("sogclr", num_samples=4)
    with pytest.raises(ValueError, match="at least 2"):
        loss_fn(torch.eye(1, 3), torch.eye(1, 3), torch.tensor([0]))


def test_sogclr_objective_stays_finite_when_u_underflows():
    # three unit vectors 120° apart: every negative has h = -1.5, exp(h/τ) = exp(-150) -> 0 in fp32
    angles = torch.tensor([0.0, 2.0, 4.0]) * math.pi / 3
    emb = torch.stack([angles.cos(), angles.sin()], dim=1)
    loss_fn = build_loss("sogclr", num_samples=3, temperature=0.01)
    out = loss_fn(emb, emb, torch.arange(3))
    assert torch.all(loss_fn.image_state.u == 0)
    assert torch.isfinite(out["objective"])
    assert out["objective"].item() >= 2 * -1.5  # an upper bound of the true value τ·(-150)·2
