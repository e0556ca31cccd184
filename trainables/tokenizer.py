"""The trial's tokenizer: a word-level one built from the dataset's own captions, or the fast
tokenizer of a pretrained text tower (nothing is downloaded).

Texts are cleaned with :func:`trainables.data.pre_caption` (keeping up to ``max_length`` words).
Word-level (:meth:`CaptionTokenizer.from_texts`): split on whitespace; ids [PAD]=0, [UNK]=1,
[CLS]=2, [SEP]=3, then the sorted vocabulary words. Pretrained
(:meth:`CaptionTokenizer.from_pretrained`): the model's own ``tokenizers`` pipeline, as
``tokenizer(texts, padding="max_length", truncation=True, max_length=L)`` (the reference's
settings). Either way every sequence carries the model's special tokens (``[CLS] ... [SEP]``),
is truncated keeping them and padded to ``max_length``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from tokenizers.processors import TemplateProcessing

from trainables.data import pre_caption
from trainables.model_config import SMALL_TEXT

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
    def from_pretrained(cls, name: str, *, max_length: int) -> CaptionTokenizer:
        """The fast tokenizer of Hugging Face model ``name`` (an id in the local cache or a
        directory), truncating and padding to ``max_length``; ModelError if there is none."""
        from trainables.towers.text import fast_tokenizer

        pretrained = fast_tokenizer(name)
        tokenizer = Tokenizer.from_str(pretrained.backend_tokenizer.to_str())
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(
            pad_id=pretrained.pad_token_id, pad_token=pretrained.pad_token, length=max_length
        )
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
        padding = self._tokenizer.padding
        if padding is None:
            raise ValueError("the tokenizer does not pad; build it with from_texts")
        return padding["pad_id"]

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


def trial_tokenizer(text_tower: str, texts: list[str], *, max_length: int) -> CaptionTokenizer:
    """The tokenizer of a trial whose ``model.text`` is ``text_tower``: a pretrained tower's
    own, else the word-level one of ``texts`` (the captions and prompts the trial sees)."""
    if text_tower == SMALL_TEXT:
        return CaptionTokenizer.from_texts(texts, max_length=max_length)
    return CaptionTokenizer.from_pretrained(text_tower, max_length=max_length)
