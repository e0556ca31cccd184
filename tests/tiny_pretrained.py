"""Tiny models in the formats real pretrained weights come in, written once per session.

``tiny_towers`` (a session fixture; import it by name) writes, with the ecosystem's own savers:
a 2-layer DistilBERT of width 32 and its fast WordPiece tokenizer (``save_pretrained``, as
``hf download`` leaves a model directory) and a torchvision ResNet-18 state dict
(``torch.save(model.state_dict())``, as torchvision's weight files are).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from trainables.model_config import ModelConfig

LETTERS = [*string.ascii_lowercase, *string.digits]
WORDS = ["a", "photo", "of", "the", "red", "green", "blue", "circle", "square", "triangle"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LETTERS, *(f"##{c}" for c in LETTERS)]
VOCAB += [w for w in WORDS if w not in VOCAB]


@dataclass(frozen=True)
class TinyTowers:
    text_dir: Path  # DistilBERT + tokenizer, save_pretrained
    resnet18_file: Path  # torchvision resnet18 state dict (fc included)

    def model_config(self, **overrides) -> ModelConfig:
        values = {
            "embed_dim": 16,
            "image": "resnet18",
            "image_weights": str(self.resnet18_file),
            "text": str(self.text_dir),
        }
        return ModelConfig(**(values | overrides))


def write_tiny_distilbert(directory: Path, *, seed: int = 0) -> Path:
    from transformers import BertTokenizer, DistilBertConfig, DistilBertModel

    torch.manual_seed(seed)
    BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(directory)
    config = DistilBertConfig(
        vocab_size=len(VOCAB),
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=64,
        pad_token_id=0,
    )
    DistilBertModel(config).save_pretrained(directory)
    return directory


def write_resnet18_state_dict(path: Path, *, seed: int = 0) -> Path:
    from torchvision import models

    torch.manual_seed(seed)
    torch.save(models.resnet18(weights=None).state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_towers(tmp_path_factory: pytest.TempPathFactory) -> TinyTowers:
    root = tmp_path_factory.mktemp("pretrained")
    return TinyTowers(
        write_tiny_distilbert(root / "tiny-distilbert"),
        write_resnet18_state_dict(root / "resnet18.pth"),
    )
