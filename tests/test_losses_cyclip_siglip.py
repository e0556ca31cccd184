"""CyCLIP, SigLIP and CLIP's learnable temperature against naive references written here from
the equations of losses.md §3.1, §3.6/§5 and §7.

The references loop over j, k in plain Python (float64) and share no code with
``trainables.losses``; values and gradients (embeddings and loss parameters) must match.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from loss_references import assert_same_output, dot, leaves, naive_clip, unit_rows

from trainables.losses import build_loss, loss_defaults


def naive_cyclip(image, text, tau, lambda_in, lambda_cross):
    batch = image.shape[0]
    in_modal, cross_modal = 0.0, 0.0
    for j in range(batch):
        for k in range(batch):
            in_modal = in_modal + (dot(image[j], image[k]) - dot(text[j], text[k])) ** 2
            cross_modal = cross_modal + (dot(image[j], text[k]) - dot(image[k], text[j])) ** 2
    in_modal, cross_modal = in_modal / batch, cross_modal / batch
    clip = naive_clip(image, text, tau)
    return clip + lambda_in * in_modal + lambda_cross * cross_modal, clip, in_modal, cross_modal


def naive_siglip(image, text, log_scale, bias):
    batch = image.shape[0]
    total = 0.0
    for i in range(batch):
        for j in range(batch):
            label = 1.0 if i == j else -1.0
            logit = torch.exp(log_scale) * dot(image[i], text[j]) + bias
            total = total - torch.log(1 / (1 + torch.exp(-label * logit)))
    return total / batch


# --- cyclip -----------------------------------------------------------------------------------


def test_cyclip_defaults():
    assert loss_defaults("cyclip") == {"temperature": 0.01, "lambda_in": 0.25, "lambda_cross": 0.25}


def test_cyclip_matches_naive_loops_in_value_terms_and_gradient():
    image, text = unit_rows(5, 4, seed=0), unit_rows(5, 4, seed=1)
    tau, lambda_in, lambda_cross = 0.07, 0.3, 0.6
    image_a, text_a, image_b, text_b = leaves(image, text, image, text)
    loss_fn = build_loss(
        "cyclip", num_samples=5, temperature=tau, lambda_in=lambda_in, lambda_cross=lambda_cross
    )
    out = loss_fn(image_a, text_a, torch.arange(5))
    loss, clip, in_modal, cross_modal = naive_cyclip(image_b, text_b, tau, lambda_in, lambda_cross)
    out["loss"].backward()
    loss.backward()

    torch.testing.assert_close(out["loss"], loss)
    torch.testing.assert_close(out["objective"], loss.detach())
    torch.testing.assert_close(out["clip"], clip.detach())
    torch.testing.assert_close(out["in_modal"], in_modal.detach())
    torch.testing.assert_close(out["cross_modal"], cross_modal.detach())
    assert in_modal.item() > 0.1 and cross_modal.item() > 0.1  # the regularisers are exercised
    torch.testing.assert_close(image_a.grad, image_b.grad)
    torch.testing.assert_close(text_a.grad, text_b.grad)


def test_cyclip_regularisers_vanish_for_identical_embeddings():
    same = unit_rows(6, 4, seed=2)
    out = build_loss("cyclip", num_samples=6)(same, same.clone(), torch.arange(6))
    torch.testing.assert_close(out["in_modal"], torch.zeros((), dtype=torch.float64))
    torch.testing.assert_close(out["cross_modal"], torch.zeros((), dtype=torch.float64))
    clip = build_loss("clip", num_samples=6)(same, same.clone(), torch.arange(6))
    torch.testing.assert_close(out["loss"], clip["loss"])


def test_cyclip_is_symmetric_in_image_and_text():
    image, text = unit_rows(5, 4, seed=3), unit_rows(5, 4, seed=4)
    loss_fn = build_loss("cyclip", num_samples=5, temperature=0.1)
    forward, swapped = loss_fn(image, text, torch.arange(5)), loss_fn(text, image, torch.arange(5))
    for key in ("loss", "clip", "in_modal", "cross_modal"):
        torch.testing.assert_close(forward[key], swapped[key])
    assert forward["cross_modal"].item() > 0.1


def test_cyclip_without_regularisers_is_clip():
    image, text = unit_rows(5, 4, seed=5), unit_rows(5, 4, seed=6)
    out = build_loss("cyclip", num_samples=5, lambda_in=0.0, lambda_cross=0.0)(
        image, text, torch.arange(5)
    )
    clip = build_loss("clip", num_samples=5)(image, text, torch.arange(5))
    torch.testing.assert_close(out["loss"], clip["loss"])
    assert out["in_modal"].item() > 0


def test_cyclip_rejects_bad_hyperparameters():
    with pytest.raises(ValueError, match="temperature"):
        build_loss("cyclip", num_samples=4, temperature=0.0)
    with pytest.raises(ValueError, match="lambda"):
        build_loss("cyclip", num_samples=4, lambda_in=-0.1)


# --- siglip -----------------------------------------------------------------------------------


def test_siglip_defaults_and_parameters():
    assert loss_defaults("siglip") == {"init_log_scale": math.log(10), "init_bias": -10.0}
    loss_fn = build_loss("siglip", num_samples=4)
    assert dict(loss_fn.named_parameters()).keys() == {"log_scale", "bias"}
    out = loss_fn(unit_rows(3, 4, seed=0).float(), unit_rows(3, 4, seed=1).float(), torch.arange(3))
    torch.testing.assert_close(out["scale"], torch.tensor(10.0))
    torch.testing.assert_close(out["bias"], torch.tensor(-10.0))


def test_siglip_matches_naive_loops_in_value_and_gradient():
    image, text = unit_rows(5, 4, seed=7), unit_rows(5, 4, seed=8)
    log_scale, bias = math.log(3.0), -2.0
    loss_fn = build_loss("siglip", num_samples=5, init_log_scale=log_scale, init_bias=bias).double()
    image_a, text_a, image_b, text_b = leaves(image, text, image, text)
    log_scale_b, bias_b = leaves(torch.tensor(log_scale, dtype=torch.float64), torch.tensor(bias))
    out = loss_fn(image_a, text_a, torch.arange(5))
    reference = naive_siglip(image_b, text_b, log_scale_b, bias_b.double())
    out["loss"].backward()
    reference.backward()

    torch.testing.assert_close(out["loss"], reference)
    torch.testing.assert_close(out["objective"], reference.detach())
    torch.testing.assert_close(image_a.grad, image_b.grad)
    torch.testing.assert_close(text_a.grad, text_b.grad)
    torch.testing.assert_close(loss_fn.log_scale.grad, log_scale_b.grad)
    torch.testing.assert_close(loss_fn.bias.grad, bias_b.grad.double())
    assert loss_fn.log_scale.grad.abs() > 1e-3 and loss_fn.bias.grad.abs() > 1e-3


def test_siglip_perfectly_separated_logits_give_zero():
    basis = torch.eye(4)  # s_ii = 1, s_ij = 0: logits t + b = +20 on the diagonal, b = -20 off it
    loss_fn = build_loss("siglip", num_samples=4, init_log_scale=math.log(40), init_bias=-20.0)
    out = loss_fn(basis, basis, torch.arange(4))
    assert 0 <= out["loss"].item() < 1e-7


def test_siglip_initial_loss_on_orthonormal_pairs():
    # at init (t = 10, b = -10): positives s_ii = 1 give logit 0, negatives s_ij = 0 give -10
    out = build_loss("siglip", num_samples=5)(torch.eye(5), torch.eye(5), torch.arange(5))
    expected = math.log(2) + 4 * math.log1p(math.exp(-10))
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)


def test_siglip_parameters_learn_and_state_dict_round_trips():
    image, text = unit_rows(6, 4, seed=11).float(), unit_rows(6, 4, seed=12).float()
    first = build_loss("siglip", num_samples=6)
    optimizer = torch.optim.SGD(first.parameters(), lr=0.1)
    first(image, text, torch.arange(6))["loss"].backward()
    optimizer.step()
    assert first.log_scale.item() != pytest.approx(math.log(10))
    assert first.bias.item() != pytest.approx(-10.0)

    second = build_loss("siglip", num_samples=6)
    second.load_state_dict(first.state_dict())
    expected, actual = first(image, text, torch.arange(6)), second(image, text, torch.arange(6))
    assert_same_output(expected, actual)


# --- clip: learnable temperature --------------------------------------------------------------


def test_clip_fixed_temperature_has_no_parameters_and_reports_tau():
    loss_fn = build_loss("clip", num_samples=4, temperature=0.05)
    assert list(loss_fn.parameters()) == []
    assert loss_fn.state_dict() == {}
    out = loss_fn(torch.eye(4), torch.eye(4), torch.arange(4))
    torch.testing.assert_close(out["temperature"], torch.tensor(0.05))


def test_clip_learnable_temperature_matches_naive_loop_and_reaches_the_parameter():
    tau = 0.07
    image, text = unit_rows(5, 4, seed=13), unit_rows(5, 4, seed=14)
    loss_fn = build_loss(
        "clip", num_samples=5, temperature=tau, learnable_temperature=True
    ).double()
    assert dict(loss_fn.named_parameters()).keys() == {"logit_scale"}
    image_a, text_a, image_b, text_b = leaves(image, text, image, text)
    (logit_scale_b,) = leaves(torch.tensor(math.log(1 / tau), dtype=torch.float64))
    out = loss_fn(image_a, text_a, torch.arange(5))
    reference = naive_clip(image_b, text_b, torch.exp(-logit_scale_b))
    out["loss"].backward()
    reference.backward()

    torch.testing.assert_close(out["loss"], reference)
    torch.testing.assert_close(out["temperature"], torch.tensor(tau, dtype=torch.float64))
    torch.testing.assert_close(image_a.grad, image_b.grad)
    torch.testing.assert_close(text_a.grad, text_b.grad)
    torch.testing.assert_close(loss_fn.logit_scale.grad, logit_scale_b.grad)
    assert loss_fn.logit_scale.grad.abs() > 1e-3
    fixed = build_loss("clip", num_samples=5, temperature=tau)(image, text, torch.arange(5))
    torch.testing.assert_close(out["loss"].detach(), fixed["loss"])


def near_duplicates(batch: int = 6, dim: int = 8):
    """Aligned pairs of nearly equal rows: s_ii > s_ij everywhere, yet the softmax does not
    saturate even at τ = 0.001, so the gradient in τ is non-zero at both bounds."""
    base = unit_rows(1, dim, seed=15)
    image = F.normalize(base + 0.01 * unit_rows(batch, dim, seed=16), dim=-1)
    return image, F.normalize(image + 0.002 * unit_rows(batch, dim, seed=17), dim=-1)


@pytest.mark.parametrize("direction", ["down", "up"])
def test_clip_temperature_stays_within_bounds_after_a_huge_step(direction):
    # aligned pairs: descent raises logit_scale (lowers τ); ascent (maximize) raises τ
    image, text = near_duplicates()
    loss_fn = build_loss(
        "clip", num_samples=6, temperature=0.05, learnable_temperature=True
    ).double()
    optimizer = torch.optim.SGD(loss_fn.parameters(), lr=1e8, maximize=direction == "up")
    loss_fn(image, text, torch.arange(6))["loss"].backward()
    assert loss_fn.logit_scale.grad.item() < 0
    optimizer.step()
    bound = 0.001 if direction == "down" else 0.5
    assert loss_fn.logit_scale.item() > math.log(1000) or direction == "up"
    assert loss_fn.logit_scale.item() < math.log(2) or direction == "down"

    def logit_scale_grad(sign: float) -> float:
        loss_fn.zero_grad()
        out = loss_fn(image, text, torch.arange(6))
        torch.testing.assert_close(out["temperature"], torch.tensor(bound, dtype=torch.float64))
        assert torch.isfinite(out["loss"])
        (sign * out["loss"]).backward()
        return loss_fn.logit_scale.grad.item()

    # beyond a bound the gradient passes only when a descent step moves back inside
    if direction == "down":  # above log(1/τ_min): inward = decrease = positive gradient
        assert logit_scale_grad(1.0) == 0
        assert logit_scale_grad(-1.0) > 0
    else:  # below log(1/τ_max): inward = increase = negative gradient
        assert logit_scale_grad(1.0) < 0
        assert logit_scale_grad(-1.0) == 0


def test_clip_learnable_temperature_round_trips_through_state_dict():
    image, text = unit_rows(6, 4, seed=17).float(), unit_rows(6, 4, seed=18).float()
    first = build_loss("clip", num_samples=6, learnable_temperature=True)
    optimizer = torch.optim.AdamW(first.parameters(), lr=0.1, weight_decay=0.0)
    for _ in range(2):
        optimizer.zero_grad()
        first(image, text, torch.arange(6))["loss"].backward()
        optimizer.step()
    state = first.state_dict()
    assert set(state) == {"logit_scale"}
    assert state["logit_scale"].item() != pytest.approx(math.log(100))

    second = build_loss("clip", num_samples=6, learnable_temperature=True)
    second.load_state_dict(state)
    expected, actual = first(image, text, torch.arange(6)), second(image, text, torch.arange(6))
    assert_same_output(expected, actual)


def test_clip_learnable_temperature_rejects_an_initial_tau_outside_the_bounds():
    with pytest.raises(ValueError, match="min_temperature"):
        build_loss("clip", num_samples=4, temperature=0.7, learnable_temperature=True)
    build_loss("clip", num_samples=4, temperature=0.7)  # a fixed τ is not bounded
