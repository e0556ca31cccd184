"""Every registered loss follows the contract of trainables/losses/base.py: its class, the typed
result, the input checks, the per-sample state and the gather of global columns."""

import pytest
import torch
from loss_references import leaves, unit_rows

from trainables.losses import (
    LOSS_NAMES,
    ContrastiveLoss,
    LossOutput,
    build_loss,
    loss_defaults,
)

VIEW_KEYS = ("image_aug_emb", "text_aug_emb")


def _build(name: str, num_samples: int = 10) -> ContrastiveLoss:
    sized = {"embed_dim": 8} if "embed_dim" in loss_defaults(name) else {}
    return build_loss(name, num_samples=num_samples, **sized).double()


def _inputs(batch: int, seed: int) -> dict[str, torch.Tensor]:
    names = ("image_emb", "text_emb", *VIEW_KEYS)
    views = leaves(*(unit_rows(batch, 8, seed=seed + k) for k in range(4)))
    return dict(zip(names, views, strict=True))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_returns_a_typed_result_with_gradients_to_every_view(name):
    loss_fn = _build(name)
    assert isinstance(loss_fn, ContrastiveLoss)
    assert loss_fn.name == name
    inputs = _inputs(4, seed=0)
    out = loss_fn(**inputs, index=torch.tensor([7, 2, 0, 9]), epoch=0)
    assert isinstance(out, LossOutput)
    assert out["loss"] is out.loss
    assert out.loss.ndim == 0 and out.loss.requires_grad
    assert out.objective.ndim == 0 and torch.isfinite(out.objective)
    assert not out.objective.requires_grad
    for term, value in out.terms.items():
        assert value.ndim == 0 and torch.isfinite(value), term
        assert not value.requires_grad, term
        assert out[term] is value
    out.loss.backward()
    used = ("image_emb", "text_emb", *(VIEW_KEYS if loss_fn.needs_views else ()))
    for key in used:
        assert inputs[key].grad is not None and inputs[key].grad.abs().sum() > 0, key
    if not loss_fn.needs_views:  # views given to a loss that has no use for them are ignored
        assert all(inputs[key].grad is None for key in VIEW_KEYS)


@pytest.mark.parametrize("name", [n for n in LOSS_NAMES if _build(n).needs_views])
def test_a_loss_over_views_refuses_a_batch_without_them(name):
    inputs = _inputs(4, seed=0)
    del inputs["text_aug_emb"]
    with pytest.raises(ValueError, match="needs the augmented views") as error:
        _build(name)(**inputs, index=torch.arange(4))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_mismatched_shapes_and_indices_are_refused(name):
    loss_fn = _build(name)
    inputs = _inputs(4, seed=0)
    with pytest.raises(ValueError, match="one shape"):
        loss_fn(**{**inputs, "text_emb": inputs["text_emb"][:3]}, index=torch.arange(4))
    with pytest.raises(ValueError, match=r"index must have shape \(B,\)"):
        loss_fn(**inputs, index=torch.arange(3))


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_sample_state_is_per_sample_fp32_and_only_the_batch_changes(name):
    loss_fn = build_loss(
        name, num_samples=10, **({"embed_dim": 8} if "embed_dim" in loss_defaults(name) else {})
    )
    state = loss_fn.sample_state()
    assert set(state) <= set(loss_fn.state_dict())
    assert all(t.shape[-1] == 10 and t.dtype == torch.float32 for t in state.values())
    before = {key: t.clone() for key, t in state.items()}
    inputs = {k: v.detach().float() for k, v in _inputs(4, seed=3).items()}
    index = torch.tensor([1, 4, 5, 8])
    loss_fn(**inputs, index=index, epoch=0)
    untouched = torch.ones(10, dtype=torch.bool)
    untouched[index] = False
    for key, tensor in loss_fn.sample_state().items():
        assert torch.equal(tensor[..., untouched], before[key][..., untouched]), key
        assert not torch.equal(tensor[..., index], before[key][..., index]), key
    stateful = {"sogclr", "isogclr", "isogclr_tempnet", "amclr", "xamclr"}
    assert bool(state) == (name in stateful)


class _TwoRanks:
    """The gather of rank 0 in a simulated two-process trial: its rows, then rank 1's
    (``remote_of`` maps each local tensor, by identity, to rank 1's tensor)."""

    def __init__(self, remote_of: dict[int, torch.Tensor]) -> None:
        self.remote_of, self.calls = remote_of, 0

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.cat([tensor, self.remote_of[id(tensor)]])

    def local_rows(self, batch_size: int) -> slice:
        return slice(0, batch_size)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_the_loss_sees_the_gathered_batch(name):
    gathered_fn, direct_fn = _build(name), _build(name)
    direct_fn.load_state_dict(gathered_fn.state_dict())  # same initial generator / scale
    kept = ("image_emb", "text_emb", *(VIEW_KEYS if gathered_fn.needs_views else ()))
    local = {k: v for k, v in _inputs(3, seed=10).items() if k in kept}
    remote = {k: v.detach() for k, v in _inputs(3, seed=20).items() if k in kept}
    local_index, remote_index = torch.tensor([0, 5, 2]), torch.tensor([7, 1, 9])
    pairs = [(local[k], remote[k]) for k in kept] + [(local_index, remote_index)]
    gathered_fn.gather = _TwoRanks({id(mine): theirs for mine, theirs in pairs})
    for fn in (gathered_fn, direct_fn):
        fn.eval()  # the TempGenerator's dropout off, so both see the same τ
    gathered = gathered_fn(**local, index=local_index, epoch=1)
    whole = {k: torch.cat([v.detach(), remote[k]]).requires_grad_() for k, v in local.items()}
    direct = direct_fn(**whole, index=torch.cat([local_index, remote_index]), epoch=1)

    assert gathered_fn.gather.calls == len(local) + 1  # every embedding and the index
    torch.testing.assert_close(gathered.loss, direct.loss)
    torch.testing.assert_close(gathered.objective, direct.objective)
    for key, tensor in gathered_fn.state_dict().items():
        torch.testing.assert_close(tensor, direct_fn.state_dict()[key], msg=key)
    gathered.loss.backward()
    direct.loss.backward()
    for key, tensor in local.items():  # the local rows' gradient flows through the gather
        torch.testing.assert_close(tensor.grad, whole[key].grad[:3], msg=key)
