"""A word-level tokenizer built from the dataset's own captions (nothing is downloaded).

Texts are cleaned with :func:`trainables.data.pre_caption` (keeping up to ``max_length`` words)
and split on whitespace. Ids:
[PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, then the sorted vocabulary words. Every sequence is
``[CLS] words... [SEP]`` truncated (keeping [SEP]) and padded to ``max_length``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.processors import TemplateProcessing

from trainables.data import pre_caption

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


class CaptionTokenizer:
    """Callable on a list of B texts -> (ids (B, L) long, attention_mask (B, L) long), L =
    ``max_length``; unknown words map to [UNK]. Serialisable with to_json/from_json."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer

    @classmethod
    def from_texts(cls, texts: Iterable[str], *, max_length: int = 32) -> CaptionTokenizer:
        """Vocabulary = sorted unique words of the cleaned texts (deterministic)."""
        if max_length < 2:
            raise ValueError(f"max_length={max_length}: needs room for [CLS] and [SEP]")
        words = sorted({word for text in texts for word in pre_caption(text).split()})
        vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *words])}
        tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
        tokenizer.pre_tokenizer = WhitespaceSplit()
        tokenizer.post_processor = TemplateProcessing(
            single="[CLS] $A [SEP]",
            special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
        )
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(pad_id=vocab["[PAD]"], pad_token="[PAD]", length=max_length)
        return cls(tokenizer)

    @classmethod
    def from_json(cls, text: str) -> CaptionTokenizer:
        return cls(Tokenizer.from_str(text))

    def to_json(self) -> str:
        return self._tokenizer.to_str()

    @property
    def vocab_size(self) -> int:
        return self._tokenizer.get_vocab_size()

    @property
    def pad_id(self) -> int:
        pad = self._tokenizer.token_to_id("[PAD]")
        if pad is None:
            raise ValueError("the tokenizer has no [PAD] token; build it with from_texts")
        return pad

    @property
    def max_length(self) -> int:
        truncation = self._tokenizer.truncation
        if truncation is None:
            raise ValueError("the tokenizer has no truncation length; build it with from_texts")
        return truncation["max_length"]

    def token_to_id(self, token: str) -> int | None:
        return self._tokenizer.token_to_id(token)

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        length = self.max_length
        encodings = self._tokenizer.encode_batch([pre_caption(t, length) for t in texts])
        shape = (len(texts), length)
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long).reshape(shape)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long).reshape(shape)
        return ids, mask
