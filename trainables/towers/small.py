"""The small towers the demo trains from scratch: a 4-block CNN and a BERT built from a config."""

from __future__ import annotations

from torch import nn
from transformers import BertConfig, BertModel

from trainables.model_config import ModelConfig


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


def small_bert(cfg: ModelConfig, vocab_size: int, max_length: int, pad_id: int) -> BertModel:
    """A BERT of ``cfg.text_layers`` layers of width ``cfg.text_width``, no pooling layer."""
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
    return BertModel(bert_cfg, add_pooling_layer=False)
