"""Everything a trial reads: train pairs, retrieval set, zero-shot set (all from the image
cache of :mod:`trainables.image_cache`) and the tokenizer.

Loaded once per process: the trials a Ray worker runs one after another (actor reuse) share
the last :class:`TrialData` while they read the same cache directory with the same tokenizer
(they only read it). The directory is the one the sweep's driver prepared
(``TrialConfig.image_cache``) when it exists here, else the cache of ``data`` as
:func:`~trainables.image_cache.prepare_image_cache` finds or builds it; its name is a
fingerprint of every data file's size and mtime, so changed data is never served stale.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from trainables.config import TrialConfig
from trainables.data import ImageList, TrainPairs, ZeroShotSpec, pre_caption, retrieval_targets
from trainables.image_cache import cache_is_complete, load_image_cache, prepare_image_cache
from trainables.tokenizer import CaptionTokenizer, trial_tokenizer


@dataclass(frozen=True)
class TrialData:
    """Datasets of one trial.

    ``retrieval_texts`` are the captions in file order; ``txt2img`` (n_texts,) maps each to its
    image and ``img2txt`` lists each image's caption indices. ``zeroshot`` holds the class names
    and prompt templates; the images and their labels are in ``zeroshot_images``.
    """

    train: TrainPairs
    retrieval_images: ImageList
    retrieval_texts: list[str]
    txt2img: torch.Tensor
    img2txt: list[list[int]]
    zeroshot_images: ImageList
    zeroshot: ZeroShotSpec
    tokenizer: CaptionTokenizer


def tokenize_all(
    tokenizer: CaptionTokenizer, texts: list[str], chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (n, L) int32, attention mask (n, L) uint8) of ``texts``, tokenized once per trial
    (not per step), in chunks to bound the tokenizer's temporary memory."""
    ids, masks = [], []
    for start in range(0, len(texts), chunk):
        chunk_ids, chunk_mask = tokenizer(texts[start : start + chunk])
        ids.append(chunk_ids.to(torch.int32))
        masks.append(chunk_mask.to(torch.uint8))
    return torch.cat(ids), torch.cat(masks)


def load_trial_data(cfg: TrialConfig) -> TrialData:
    """The datasets of ``cfg.data`` at ``cfg.image_size`` from the image cache (built first when
    the driver has not built it), reused from this process's last trial when it read the same
    (module docstring); raises DataError on bad input."""
    directory = Path(cfg.image_cache) if cfg.image_cache else None
    if directory is None or not cache_is_complete(directory):
        directory, _ = prepare_image_cache(cfg.data, cfg.image_size)
    return _load(directory, cfg.model.text, cfg.max_length)


@functools.lru_cache(maxsize=1)
def _load(directory: Path, text_tower: str, max_length: int) -> TrialData:
    """The datasets of the image cache in ``directory`` with the tokenizer of ``text_tower``."""
    cache = load_image_cache(directory)
    texts, txt2img, img2txt = retrieval_targets(cache.retrieval_records)

    # The tokenizer: a pretrained text tower's own, else word-level over the vocabulary of every
    # caption, paraphrase and prompt (built once into the cache: no trial rescans the captions).
    tokenizer = trial_tokenizer(text_tower, cache.vocabulary, max_length=max_length)

    captions = tokenize_all(tokenizer, [pre_caption(r.caption) for r in cache.train_records])
    return TrialData(
        train=TrainPairs(cache.train_records, cache.train_pixels, cache.train_readable, captions),
        retrieval_images=ImageList(cache.retrieval_pixels, None),
        retrieval_texts=texts,
        txt2img=txt2img,
        img2txt=img2txt,
        zeroshot_images=ImageList(cache.zeroshot_pixels, cache.zeroshot_labels),
        zeroshot=cache.zeroshot,
        tokenizer=tokenizer,
    )
