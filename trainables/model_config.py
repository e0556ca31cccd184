"""Which towers the bimodal model has and their sizes (kept apart from the model so configs
load without torch).

``image`` is ``small_cnn`` (a small CNN built from ``image_width``) or a torchvision model
name (``resnet50``), or a timm one (``timm:resnet50``; a name torchvision lacks is looked up
in timm). ``image_weights`` is "" (random initialisation), a local state-dict file, or the
name of a weights set found in the local torch cache (torchvision: ``IMAGENET1K_V2``,
``DEFAULT``) or Hugging Face cache (timm: a pretrained tag such as ``a1_in1k``).
``text`` is ``small_bert`` (a small BERT built from ``text_width``, ``text_layers`` and
``text_heads``, with a word-level tokenizer from the dataset's captions) or a Hugging Face
model id or local directory (``distilbert-base-uncased``), loaded from the local cache or
directory with its own tokenizer. Nothing is downloaded at run time.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

SMALL_IMAGE = "small_cnn"
SMALL_TEXT = "small_bert"
WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


class ModelError(ValueError):
    """A tower cannot be built as configured (a missing weights file or cached model, a state
    dict that does not fit, no fast tokenizer); the message names the path or cache and how to
    fill it."""


def is_weights_file(weights: str) -> bool:
    """Whether ``model.image_weights`` names a file (else a weights name of the cache)."""
    return "/" in weights or weights.startswith("~") or weights.endswith(WEIGHT_FILE_SUFFIXES)


@dataclass(frozen=True)
class ModelConfig:
    """The two towers and their sizes. The defaults train on CPU in seconds per epoch; the
    ``image_width`` and ``text_*`` sizes apply to the small towers only."""

    embed_dim: int = 64
    image_width: int = 32
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 2
    dropout: float = 0.0
    image: str = SMALL_IMAGE
    image_weights: str = ""
    text: str = SMALL_TEXT

    def __post_init__(self) -> None:
        for name in ("embed_dim", "image_width", "text_width", "text_layers", "text_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.text_width % self.text_heads:
            raise ValueError(
                f"model.text_width ({self.text_width}) must be divisible by "
                f"model.text_heads ({self.text_heads})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout}")
        if not self.image.strip() or not self.text.strip():
            raise ValueError(
                f"model.image and model.text must name a tower (default {SMALL_IMAGE!r}, "
                f"{SMALL_TEXT!r}), got {self.image!r}, {self.text!r}"
            )
        if self.image == SMALL_IMAGE and self.image_weights:
            raise ValueError(
                f"model.image_weights = {self.image_weights!r} needs a torchvision or timm "
                f"model.image (such as 'resnet50'); {SMALL_IMAGE} is trained from scratch"
            )

    @property
    def reads_files(self) -> bool:
        """Whether a tower is loaded from files (else both are built from the sizes)."""
        return self.image != SMALL_IMAGE or self.pretrained_text

    @property
    def pretrained_text(self) -> bool:
        """Whether the text tower (and its tokenizer) come from Hugging Face files."""
        return self.text != SMALL_TEXT

    def with_absolute_paths(self) -> ModelConfig:
        """A copy whose weights file and existing text directory are absolute paths (trials
        run in other working directories)."""
        weights, text = self.image_weights, self.text
        if weights and is_weights_file(weights):
            weights = str(Path(weights).expanduser().resolve())
        if self.pretrained_text and Path(text).expanduser().is_dir():
            text = str(Path(text).expanduser().resolve())
        return dataclasses.replace(self, image_weights=weights, text=text)
