"""The bimodal model: an image tower and a text tower, each a feature extractor followed by a
linear projection to ``embed_dim``.

``encode_image(images (B, 3, S, S))`` and ``encode_text(ids (B, L), mask (B, L))`` both return
(B, d) unit vectors whose dot products are the cosine similarities every loss works on. The
feature extractors are the small towers built from the config (the default) or a torchvision /
timm image model and a Hugging Face text model loaded from local files
(:mod:`trainables.model_config` says which); the text features are the hidden state of the
first ([CLS]) token, as in the reference. Nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainables.model_config import SMALL_IMAGE, ModelConfig, ModelError
from trainables.towers.small import small_bert, small_cnn

__all__ = ["BimodalModel", "ModelConfig", "ModelError", "check_towers", "place_on_device"]


class ImageEncoder(nn.Module):
    """``features`` (B, 3, S, S) -> (B, F), then ``projection`` -> (B, embed_dim), not
    normalised."""

    def __init__(self, features: nn.Module, width: int, embed_dim: int) -> None:
        super().__init__()
        self.features = features
        self.projection = nn.Linear(width, embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(images))


class TextEncoder(nn.Module):
    """A BERT-family encoder ``bert``; its [CLS] hidden state (position 0 of the last hidden
    state, width H) is projected: ids (B, L), mask (B, L) -> (B, embed_dim), not normalised."""

    def __init__(self, bert: nn.Module, width: int, embed_dim: int) -> None:
        super().__init__()
        self.bert = bert
        self.projection = nn.Linear(width, embed_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.projection(hidden[:, 0])


def image_features(cfg: ModelConfig) -> tuple[nn.Module, int]:
    """(feature extractor, its width F) of ``cfg.image`` with ``cfg.image_weights`` loaded."""
    if cfg.image == SMALL_IMAGE:
        return small_cnn(cfg.image_width)
    from trainables.towers.vision import image_backbone

    return image_backbone(cfg.image, cfg.image_weights)


def text_features(
    cfg: ModelConfig, *, vocab_size: int, max_length: int, pad_id: int
) -> tuple[nn.Module, int]:
    """(encoder, its hidden width H) of ``cfg.text``; the sizes are the tokenizer's and apply
    to the small BERT only (a pretrained model has its own)."""
    if not cfg.pretrained_text:
        return small_bert(cfg, vocab_size, max_length, pad_id), cfg.text_width
    from trainables.towers.text import text_backbone

    return text_backbone(cfg.text)


class BimodalModel(nn.Module):
    """Image and text towers mapping into one L2-normalised embedding space.

    With ``channels_last`` (see :func:`place_on_device`) the conv tower's weights and inputs
    use the NHWC memory layout; the values computed are the same.
    """

    def __init__(self, cfg: ModelConfig, *, vocab_size: int, max_length: int, pad_id: int) -> None:
        super().__init__()
        self.image_encoder = ImageEncoder(*image_features(cfg), cfg.embed_dim)
        text = text_features(cfg, vocab_size=vocab_size, max_length=max_length, pad_id=pad_id)
        self.text_encoder = TextEncoder(*text, cfg.embed_dim)
        self.channels_last = False

    def use_channels_last(self) -> None:
        """Store the image tower's 4-D weights (and convert its inputs) as channels-last."""
        self.image_encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.channels_last = True

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> unit vectors (B, d)."""
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """token ids and attention mask (B, L) -> unit vectors (B, d)."""
        return F.normalize(self.text_encoder(input_ids, attention_mask), dim=-1)


def place_on_device(model: BimodalModel, device: torch.device, *, compile: bool = False) -> None:
    """Move ``model`` to ``device``; on CUDA also turn on TF32 matmuls and convolutions,
    cuDNN autotuning and channels-last for the image tower. ``compile`` wraps each tower in
    ``torch.compile`` (in place: parameter names, hence checkpoints, do not change)."""
    model.to(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
        model.use_channels_last()
    if compile:
        model.image_encoder.compile()
        model.text_encoder.compile()


def check_towers(cfg: ModelConfig, max_length: int) -> None:
    """Build the configured pretrained towers and tokenizer once, as a trial will; raises
    ModelError naming what is missing or does not fit (the small towers need nothing)."""
    if cfg.image != SMALL_IMAGE:
        image_features(cfg)
    if cfg.pretrained_text:
        from trainables.tokenizer import CaptionTokenizer

        tokenizer = CaptionTokenizer.from_pretrained(cfg.text, max_length=max_length)
        encoder: Any
        encoder, _ = text_features(cfg, vocab_size=0, max_length=max_length, pad_id=0)
        embeddings = encoder.get_input_embeddings().num_embeddings
        positions = getattr(encoder.config, "max_position_embeddings", max_length)
        if tokenizer.vocab_size > embeddings or max_length > positions:
            raise ModelError(
                f"text model {cfg.text}: its tokenizer has {tokenizer.vocab_size} tokens for "
                f"{embeddings} embeddings, or trial.max_length {max_length} exceeds its "
                f"{positions} positions; save the model and tokenizer that belong together "
                "or lower trial.max_length"
            )
