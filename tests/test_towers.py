"""Pretrained towers from local files: torchvision / timm image models, Hugging Face text
models and their tokenizers, loaded exactly as a user's downloaded weights are.

The files are tiny stand-ins in the real formats (tests/tiny_pretrained.py). Proven here: the
weights a trial starts from equal the saved ones (classifier dropped, features projected); the
model's own tokenizer gives the ids of ``tokenizer(..., padding="max_length",
truncation=True)``; a trial trains with the towers in fp32 and bf16; weights names resolve from
the torch and Hugging Face caches only; every missing or unfitting file is one ModelError
naming it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_trial import run, tiny_config
from tiny_pretrained import tiny_towers  # noqa: F401  (a session fixture)
from torch import nn

from study.checks import check_model
from study.config import load_config
from trainables.data import pre_caption
from trainables.model import BimodalModel, ModelError, check_towers
from trainables.model_config import ModelConfig
from trainables.towers.vision import image_backbone
from trainables.trial import build_state
from trainables.trial_data import load_trial_data

MAX_LENGTH = 16


def pretrained_trial(tiny_dataset, tiny_towers, **overrides):  # noqa: F811
    return tiny_config(
        tiny_dataset, model=tiny_towers.model_config(), max_length=MAX_LENGTH, **overrides
    )


def test_a_trial_starts_from_the_saved_weights(tiny_dataset, tiny_towers):  # noqa: F811
    cfg = pretrained_trial(tiny_dataset, tiny_towers)
    model = build_state(cfg, load_trial_data(cfg)).model
    saved = torch.load(tiny_towers.resnet18_file, weights_only=True)
    features = model.image_encoder.features
    assert isinstance(features.fc, nn.Identity)  # the classifier is replaced by the projection
    assert model.image_encoder.projection.in_features == 512
    loaded = features.state_dict()
    assert set(loaded) == {k for k in saved if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)

    saved_text = load_file(tiny_towers.text_dir / "model.safetensors")
    loaded_text = model.text_encoder.bert.state_dict()
    assert set(saved_text) <= set(loaded_text)
    assert all(torch.equal(loaded_text[k], saved_text[k]) for k in saved_text)
    assert model.text_encoder.projection.in_features == 32  # the DistilBERT's dim


def test_the_text_tower_embeds_the_cls_token(tiny_towers):  # noqa: F811
    model = BimodalModel(tiny_towers.model_config(), vocab_size=0, max_length=8, pad_id=0)
    ids = torch.tensor([[2, 40, 41, 3, 0, 0], [2, 45, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    hidden = model.text_encoder.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    expected = nn.functional.normalize(model.text_encoder.projection(hidden[:, 0]), dim=-1)
    torch.testing.assert_close(model.encode_text(ids, mask), expected)


def test_the_models_own_tokenizer_pads_and_truncates_like_the_reference(
    tiny_dataset,
    tiny_towers,  # noqa: F811
):
    from transformers import AutoTokenizer

    data = load_trial_data(pretrained_trial(tiny_dataset, tiny_towers))
    texts = ["A red circle, left of a Blue square!", "x" * 40 + " y z " * 10, "photo"]
    ids, mask = data.tokenizer(texts)
    reference = AutoTokenizer.from_pretrained(tiny_towers.text_dir, local_files_only=True)(
        [pre_caption(t, MAX_LENGTH) for t in texts],
        padding="max_length",
        truncation=True,
        max_length=MAX_LENGTH,
        return_tensors="pt",
    )
    assert torch.equal(ids, reference["input_ids"])
    assert torch.equal(mask, reference["attention_mask"])
    assert ids.shape == (3, MAX_LENGTH) and ids[1, -1] == 3  # truncated, [SEP] kept
    assert data.tokenizer.pad_id == 0 and ids[2, -1] == 0
    assert (ids != 1).all()  # no [UNK]: WordPiece falls back to letters


def test_a_trial_trains_with_pretrained_towers_in_fp32_and_bf16(
    tiny_dataset,
    tiny_towers,  # noqa: F811
):
    short = {"epochs": 1, "loss": "sogclr", "batch_size": 32}  # 3 steps
    fp32 = run(pretrained_trial(tiny_dataset, tiny_towers, **short))
    bf16 = run(pretrained_trial(tiny_dataset, tiny_towers, **short, precision="bf16"))
    for metrics in (fp32[0], bf16[0]):
        assert torch.isfinite(torch.tensor(metrics["train_loss"]))
        assert 0.0 <= metrics["r_mean"] <= 100.0
    assert bf16[0]["train_loss"] != fp32[0]["train_loss"]  # autocast was on
    assert bf16[0]["train_loss"] == pytest.approx(fp32[0]["train_loss"], rel=0.15)


# --- weights by name, from the caches only --------------------------------------------------


def test_torchvision_weights_by_name_come_from_the_torch_cache(
    tmp_path,
    monkeypatch,
    tiny_towers,  # noqa: F811
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ModelError) as error:
        image_backbone("resnet18", "IMAGENET1K_V1")
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    message = str(error.value)
    assert str(cached) in message and "download https://" in message and "\n" not in message
    cached.parent.mkdir(parents=True)
    cached.write_bytes(tiny_towers.resnet18_file.read_bytes())
    features, width = image_backbone("resnet18", "ResNet18_Weights.IMAGENET1K_V1")
    saved = torch.load(tiny_towers.resnet18_file, weights_only=True)
    assert width == 512 and torch.equal(features.conv1.weight, saved["conv1.weight"])


def test_timm_models_load_a_state_dict_file_and_tags_from_the_hf_cache(tmp_path, monkeypatch):
    import timm
    from huggingface_hub import constants

    torch.manual_seed(1)
    path = tmp_path / "timm-resnet18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    features, width = image_backbone("timm:resnet18", str(path))
    saved = torch.load(path, weights_only=True)
    assert width == 512 and torch.equal(features.conv1.weight, saved["conv1.weight"])
    assert features.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 512)

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match=r"timm/resnet18\.a1_in1k .*hf download timm/resnet18"):
        image_backbone("timm:resnet18", "a1_in1k")


# --- one line per missing or unfitting file -----------------------------------------------


def broken_state_dict(tiny_towers, tmp_path: Path) -> Path:  # noqa: F811
    state = torch.load(tiny_towers.resnet18_file, weights_only=True)
    del state["layer4.1.bn2.bias"]
    state["conv1.weight"] = torch.zeros(64, 3, 3, 3)
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    return path


def model_error(cfg: ModelConfig) -> str:
    with pytest.raises(ModelError) as error:
        check_towers(cfg, MAX_LENGTH)
    message = str(error.value)
    assert "\n" not in message, message
    return message


def test_a_missing_weights_file(tiny_towers, tmp_path):  # noqa: F811
    path = tmp_path / "nope.pth"
    message = model_error(tiny_towers.model_config(image_weights=str(path)))
    assert f"model.image_weights {path} does not exist" in message
    assert "torch.save(model.state_dict(), path)" in message


def test_a_state_dict_that_does_not_fit(tiny_towers, tmp_path):  # noqa: F811
    path = broken_state_dict(tiny_towers, tmp_path)
    message = model_error(tiny_towers.model_config(image_weights=str(path)))
    assert str(path) in message and "does not fit" in message
    assert "1 missing keys (layer4.1.bn2.bias)" in message
    assert "1 unexpected keys (extra.weight)" in message
    assert "1 keys of another shape (conv1.weight)" in message


def test_a_file_that_is_no_state_dict(tiny_towers, tmp_path):  # noqa: F811
    path = tmp_path / "notes.pth"
    path.write_text("not a checkpoint")
    message = model_error(tiny_towers.model_config(image_weights=str(path)))
    assert "is not a readable state dict" in message


@pytest.mark.parametrize(
    ("image", "weights", "words"),
    [
        ("resnet5", "", ["neither a torchvision nor a timm model", "did you mean"]),
        ("resnet18", "IMAGENET9K", ["no weights name of torchvision resnet18", "IMAGENET1K_V1"]),
    ],
)
def test_an_unknown_image_model_or_weights_name(tiny_towers, image, weights, words):  # noqa: F811
    message = model_error(tiny_towers.model_config(image=image, image_weights=weights))
    assert all(word in message for word in words), message


def test_a_text_model_that_is_not_cached(tiny_towers):  # noqa: F811
    message = model_error(tiny_towers.model_config(text="no-such-org/no-such-model"))
    assert "no-such-org/no-such-model in the Hugging Face cache" in message
    assert "hf download no-such-org/no-such-model" in message


def test_a_text_directory_without_a_tokenizer(tiny_towers, tmp_path):  # noqa: F811
    directory = tmp_path / "model-only"
    directory.mkdir()
    for name in ("config.json", "model.safetensors"):
        (directory / name).write_bytes((tiny_towers.text_dir / name).read_bytes())
    message = model_error(tiny_towers.model_config(text=str(directory)))
    assert f"text model directory {directory}" in message and "no tokenizer vocabulary" in message


def test_a_text_directory_without_weights(tiny_towers, tmp_path):  # noqa: F811
    directory = tmp_path / "tokenizer-only"
    directory.mkdir()
    for path in tiny_towers.text_dir.iterdir():
        if path.name != "model.safetensors":
            (directory / path.name).write_bytes(path.read_bytes())
    message = model_error(tiny_towers.model_config(text=str(directory)))
    assert f"cannot load text model directory {directory}" in message


def test_max_length_beyond_the_text_models_positions(tiny_towers):  # noqa: F811
    with pytest.raises(ModelError, match=r"trial\.max_length 100 exceeds its 64 positions"):
        check_towers(tiny_towers.model_config(), 100)


def test_weights_for_the_small_cnn_are_refused():
    with pytest.raises(ValueError, match=r"needs a torchvision or timm model\.image"):
        ModelConfig(image_weights="x.pth")


def test_the_small_towers_need_no_files(tiny_towers):  # noqa: F811
    assert not ModelConfig().reads_files
    check_towers(ModelConfig(), MAX_LENGTH)  # builds nothing, reads nothing
    assert tiny_towers.model_config(text="small_bert").reads_files
    assert tiny_towers.model_config(image="small_cnn", image_weights="").reads_files


def test_relative_paths_become_absolute(tmp_path, monkeypatch, tiny_towers):  # noqa: F811
    monkeypatch.chdir(tiny_towers.text_dir.parent)
    cfg = ModelConfig(
        image="resnet18", image_weights="resnet18.pth", text="tiny-distilbert"
    ).with_absolute_paths()
    assert cfg.image_weights == str(tiny_towers.resnet18_file)
    assert cfg.text == str(tiny_towers.text_dir)
    hub_id = ModelConfig(text="distilbert-base-uncased", image_weights="").with_absolute_paths()
    assert hub_id.text == "distilbert-base-uncased"


def test_the_seeds_gpu_study_is_the_papers_setup_and_finds_local_towers(tiny_towers):  # noqa: F811
    configs = Path(__file__).resolve().parents[1] / "configs"
    towers = tiny_towers.model_config()
    overrides = [
        'model.image="resnet18"',
        f"model.image_weights={json.dumps(towers.image_weights)}",
        f"model.text={json.dumps(towers.text)}",
    ]
    cfg = load_config(configs / "seeds-gpu.toml", overrides)
    trial = cfg.trial
    assert (trial.batch_size, trial.epochs, trial.image_size, trial.max_length) == (
        128,
        30,
        256,
        30,
    )
    assert (trial.precision, trial.model.embed_dim, cfg.resources.gpus_per_trial) == (
        "bf16",
        256,
        1,
    )
    assert cfg.cells == load_config(configs / "seeds.toml").cells
    check_model(cfg)  # the overridden paths load; the file's own name the real weights
    assert load_config(configs / "seeds-gpu.toml").trial.model.image == "resnet50"
