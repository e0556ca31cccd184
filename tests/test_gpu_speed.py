"""The GPU speed settings: channels-last, TF32, fused AdamW, torch.compile, evaluation autocast.

What runs on the CPU is checked here: channels-last changes no fp32 result of the conv towers
beyond float tolerance and is used on CUDA only; a CPU trial leaves TF32 and fused AdamW off;
``trial.compile`` compiles both towers in place without renaming any parameter (so
checkpoints keep their keys); evaluation runs under the trial's autocast.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from test_trial import TINY_MODEL, tiny_config

from study.config import load_config
from trainables.evaluation import evaluate
from trainables.model import BimodalModel
from trainables.optim import OPTIMIZERS, build_optimizer, fused_kwargs
from trainables.precision import MixedPrecision
from trainables.trial import build_state
from trainables.trial_data import load_trial_data

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def small_model(image: str = "small_cnn") -> BimodalModel:
    torch.manual_seed(0)
    cfg = dataclasses.replace(TINY_MODEL, image=image)
    return BimodalModel(cfg, vocab_size=50, max_length=8, pad_id=0)


@pytest.mark.parametrize("image", ["small_cnn", "resnet18"])
def test_channels_last_keeps_fp32_results_and_gradients(image):
    model = small_model(image).train()
    nhwc = copy.deepcopy(model)
    nhwc.use_channels_last()
    conv = next(p for p in nhwc.image_encoder.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    images = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(8, 16, generator=torch.Generator().manual_seed(2))
    out, out_nhwc = model.encode_image(images), nhwc.encode_image(images)
    torch.testing.assert_close(out_nhwc, out, rtol=1e-3, atol=1e-4)  # float reordering only
    (out * weights).sum().backward()
    (out_nhwc * weights).sum().backward()
    for p, q in zip(model.image_encoder.parameters(), nhwc.image_encoder.parameters(), strict=True):
        assert (q.grad - p.grad).norm() <= 1e-4 * p.grad.norm()  # measured: <= 1.5e-5


def test_a_cpu_trial_uses_none_of_the_cuda_settings(tiny_dataset):
    cfg = tiny_config(tiny_dataset)
    state = build_state(cfg, load_trial_data(cfg))
    assert not state.model.channels_last
    conv = next(p for p in state.model.image_encoder.parameters() if p.dim() == 4)
    assert conv.is_contiguous()  # NCHW
    assert not state.optimizer.defaults.get("fused")


def test_adamw_is_fused_on_cuda_only():
    cpu_params = [{"params": [torch.nn.Parameter(torch.zeros(2))]}]
    assert fused_kwargs(OPTIMIZERS["adamw"], cpu_params) == {}
    if torch.cuda.is_available():
        cuda_params = [{"params": [torch.nn.Parameter(torch.zeros(2, device="cuda"))]}]
        assert fused_kwargs(OPTIMIZERS["adamw"], cuda_params) == {"fused": True}
        assert fused_kwargs(OPTIMIZERS["adamp"], cuda_params) == {}
        model = small_model().cuda()
        optimizer = build_optimizer("adamw", model.named_parameters(), lr=1e-3, weight_decay=0.0)
        assert optimizer.defaults["fused"]


def test_trial_compile_compiles_the_towers_in_place(tiny_dataset, tmp_path):
    config = tmp_path / "study.toml"
    config.write_text((CONFIGS / "demo.toml").read_text())
    parsed = load_config(
        config, [f"data.dir={json.dumps(str(tiny_dataset))}", "trial.compile=true"]
    )
    assert parsed.trial.compile is True
    cfg = tiny_config(tiny_dataset, compile=True)
    model = build_state(cfg, load_trial_data(cfg)).model
    assert model.image_encoder._compiled_call_impl is not None
    assert model.text_encoder._compiled_call_impl is not None
    plain = build_state(tiny_config(tiny_dataset), load_trial_data(cfg)).model
    assert plain.image_encoder._compiled_call_impl is None
    assert list(model.state_dict()) == list(plain.state_dict())  # checkpoints keep their keys


def test_evaluation_runs_under_the_trials_autocast(tiny_dataset, monkeypatch):
    cfg = tiny_config(tiny_dataset, model=TINY_MODEL)
    data = load_trial_data(cfg)
    model = build_state(cfg, data).model
    dtypes = []
    encode = model.encode_image

    def recording(images):
        out = encode(images)
        dtypes.append(out.dtype)
        return out

    monkeypatch.setattr(model, "encode_image", recording)
    fp32 = evaluate(model, data, 128)
    assert set(dtypes) == {torch.float32}
    dtypes.clear()
    bf16 = evaluate(model, data, 128, MixedPrecision("bf16", torch.device("cpu")))
    assert set(dtypes) == {torch.bfloat16}
    assert bf16.keys() == fp32.keys()
    assert bf16["r_mean"] == pytest.approx(fp32["r_mean"], abs=10.0)  # same untrained model
