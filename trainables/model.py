"""The bimodal model: a small CNN image tower, a small BERT text tower, linear projections.

Both towers end in a linear projection to ``embed_dim`` followed by L2 normalisation, so
``encode_image(images (B, 3, S, S))`` and ``encode_text(ids (B, L), mask (B, L))`` both
return (B, d) unit vectors whose dot products are the cosine similarities every loss works on.
Everything is built from a config: nothing is downloaded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel

from trainables.model_config import ModelConfig


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ImageEncoder(nn.Module):
    """Four 3x3 conv blocks (widths w, 2w, 4w, 4w; stride 2 from the second), global average
    pooling and a linear projection: (B, 3, S, S) -> (B, embed_dim), not normalised."""

    def __init__(self, width: int, embed_dim: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(3, width, 1),
            _conv_block(width, 2 * width, 2),
            _conv_block(2 * width, 4 * width, 2),
            _conv_block(4 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.projection = nn.Linear(4 * width, embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(images))


class TextEncoder(nn.Module):
    """A BERT built from a config; the [CLS] hidden state is projected:
    ids (B, L), mask (B, L) -> (B, embed_dim), not normalised."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, max_length: int, pad_id: int) -> None:
        super().__init__()
        bert_cfg = BertConfig(
            vocab_size=vocab_size,
            hidden_size=cfg.text_width,
            num_hidden_layers=cfg.text_layers,
            num_attention_heads=cfg.text_heads,
            intermediate_size=4 * cfg.text_width,
            max_position_embeddings=max_length,
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.dropout,
            pad_token_id=pad_id,
        )
        self.bert = BertModel(bert_cfg, add_pooling_layer=False)
        self.projection = nn.Linear(cfg.text_width, cfg.embed_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.projection(hidden[:, 0])


class BimodalModel(nn.Module):
    """Image and text towers mapping into one L2-normalised embedding space."""

    def __init__(self, cfg: ModelConfig, *, vocab_size: int, max_length: int, pad_id: int) -> None:
        super().__init__()
        self.image_encoder = ImageEncoder(cfg.image_width, cfg.embed_dim)
        self.text_encoder = TextEncoder(cfg, vocab_size, max_length, pad_id)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) -> unit vectors (B, d)."""
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """token ids and attention mask (B, L) -> unit vectors (B, d)."""
        return F.normalize(self.text_encoder(input_ids, attention_mask), dim=-1)
