"""Sizes of the bimodal model (kept apart from the model so configs load without torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the two towers. The defaults train on CPU in seconds per epoch."""

    embed_dim: int = 64
    image_width: int = 32
    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 2
    dropout: float = 0.0

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
