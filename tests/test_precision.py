"""Mixed precision: the towers under autocast, the loss math and per-sample state in float32."""

import pytest
import torch
from loss_references import assert_same_output, unit_rows
from test_trial import run, tiny_config, without_timings

from trainables.checkpoint import STATE_FILE
from trainables.losses import LOSS_NAMES, build_loss, loss_defaults
from trainables.precision import MixedPrecision

KEYS = ("image_emb", "text_emb", "image_aug_emb", "text_aug_emb")


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_a_loss_computes_half_precision_embeddings_in_float32(name):
    sized = {"embed_dim": 8} if "embed_dim" in loss_defaults(name) else {}
    torch.manual_seed(0)
    half_fn = build_loss(name, num_samples=10, **sized).eval()
    full_fn = build_loss(name, num_samples=10, **sized).eval()
    full_fn.load_state_dict(half_fn.state_dict())
    half = {k: unit_rows(4, 8, seed=i).bfloat16().requires_grad_() for i, k in enumerate(KEYS)}
    full = {k: v.detach().float().requires_grad_() for k, v in half.items()}
    index = torch.tensor([1, 4, 5, 8])
    for epoch in (0, 1):
        out_half = half_fn(**half, index=index, epoch=epoch)
        out_full = full_fn(**full, index=index, epoch=epoch)
        assert_same_output(out_half, out_full)
    assert out_half.objective.dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in half_fn.sample_state().values())
    out_half.loss.backward()
    assert half["image_emb"].grad.dtype == torch.bfloat16  # the gradient returns to the towers


def test_unknown_precision_is_one_line():
    with pytest.raises(ValueError, match=r"trial\.precision must be one of fp32, bf16, fp16"):
        MixedPrecision("int8", torch.device("cpu"))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_half_precision_trial_trains_deterministically_near_fp32(
    tiny_dataset, precision, tmp_path
):
    cfg = tiny_config(tiny_dataset, epochs=1, loss="sogclr", precision=precision)
    first, second = run(cfg, keep_dir=tmp_path), run(cfg)
    assert [without_timings(m) for m in first] == [without_timings(m) for m in second]
    reference = run(tiny_config(tiny_dataset, epochs=1, loss="sogclr"))
    assert first[0]["train_loss"] != reference[0]["train_loss"]  # autocast was on
    assert first[0]["train_loss"] == pytest.approx(
        reference[0]["train_loss"], rel=0.15
    )  # bf16 rounding, one epoch
    payload = torch.load(tmp_path / "epoch1" / STATE_FILE, weights_only=False)
    assert all(t.dtype == torch.float32 for t in payload["loss"].values())
    assert all(t.dtype == torch.float32 for t in payload["model"].values() if t.is_floating_point())
    assert ("scale" in payload["grad_scaler"]) == (precision == "fp16")
