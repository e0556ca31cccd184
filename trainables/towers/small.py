"""The small towers the demo trains from scratch: a 4-block CNN and a BERT built from a config."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from trainables.model_config import ModelConfig

LAYER_NORM_EPS = 1e-12  # BertConfig.layer_norm_eps
INIT_STD = 0.02  # BertConfig.initializer_range


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def small_cnn(width: int) -> tuple[nn.Module, int]:
    """Four 3x3 conv blocks (widths w, 2w, 4w, 4w; stride 2 from the second) and global
    average pooling: (B, 3, S, S) -> (B, 4w); returns (module, 4w)."""
    features = nn.Sequential(
        _conv_block(3, width, 1),
        _conv_block(width, 2 * width, 2),
        _conv_block(2 * width, 4 * width, 2),
        _conv_block(4 * width, 4 * width, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    return features, 4 * width


class EncoderOutput(NamedTuple):
    """The part of a Hugging Face encoder's output that :class:`trainables.model.TextEncoder`
    reads, so the small BERT and a pretrained one plug in the same way."""

    last_hidden_state: torch.Tensor  # (B, L, H)


class SmallBert(nn.Module):
    """BERT's encoder (Devlin et al., 2019) built from ``torch.nn`` parts: the architecture of
    ``transformers.BertModel`` without token types and pooler, which
    ``tests/test_small_bert.py`` checks output for output with copied weights.

    ids (B, L) -> word + position embeddings -> LayerNorm -> dropout -> ``layers`` post-LN
    blocks [x = LN(x + Attn(x)); x = LN(x + W2 GELU(W1 x))], FFN width 4H, LayerNorm eps 1e-12;
    keys where ``attention_mask`` (B, L) is 0 are masked out. BERT's initialisation: weights
    N(0, 0.02), biases 0, the pad row of the word embeddings 0. One difference in training
    mode: ``nn.TransformerEncoderLayer`` also drops out after the GELU (``dropout`` is 0 by
    default). It does not need ``transformers``, whose import costs a trial actor ~4 s.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        width: int,
        layers: int,
        heads: int,
        max_length: int,
        pad_id: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, width, padding_idx=pad_id)
        self.position_embeddings = nn.Embedding(max_length, width)
        self.embedding_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.embedding_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            width,
            heads,
            dim_feedforward=4 * width,
            dropout=dropout,
            activation="gelu",
            layer_norm_eps=LAYER_NORM_EPS,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.apply(_bert_init)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EncoderOutput:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        x = self.embedding_dropout(self.embedding_norm(x))
        hidden = self.encoder(x, src_key_padding_mask=attention_mask == 0)
        return EncoderOutput(hidden)


def _bert_init(module: nn.Module) -> None:
    """BERT's initialisation (``BertPreTrainedModel._init_weights``) of one module."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=INIT_STD)
        if module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])
    elif isinstance(module, nn.MultiheadAttention):
        nn.init.normal_(module.in_proj_weight, std=INIT_STD)
        nn.init.zeros_(module.in_proj_bias)


def small_bert(cfg: ModelConfig, vocab_size: int, max_length: int, pad_id: int) -> SmallBert:
    """A :class:`SmallBert` of ``cfg.text_layers`` layers of width ``cfg.text_width``."""
    return SmallBert(
        vocab_size=vocab_size,
        width=cfg.text_width,
        layers=cfg.text_layers,
        heads=cfg.text_heads,
        max_length=max_length,
        pad_id=pad_id,
        dropout=cfg.dropout,
    )
