"""Everything a trial reads from disk: train pairs, retrieval set, zero-shot set, tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from trainables.config import TrialConfig
from trainables.data import (
    DataError,
    ImageList,
    TrainPairs,
    ZeroShotSpec,
    list_image_folder,
    read_retrieval_annotations,
    read_train_annotations,
    read_zeroshot_classes,
    retrieval_targets,
)
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


def load_trial_data(cfg: TrialConfig) -> TrialData:
    """Read and check every annotation file of ``cfg.data``; raises DataError on bad input.

    The tokenizer's vocabulary is built from the train captions (and their paraphrases), the
    retrieval captions and the zero-shot prompts, so nothing is downloaded.
    """
    paths = cfg.data
    train_records = read_train_annotations(paths.path("train_json"))
    retrieval_records = read_retrieval_annotations(paths.path("retrieval_json"))
    zeroshot = read_zeroshot_classes(paths.path("zeroshot_classes"))
    zeroshot_files = list_image_folder(paths.path("zeroshot_dir"))
    n_folders = len({label for _, label in zeroshot_files})
    if n_folders != len(zeroshot.classes):
        raise DataError(
            f"zero-shot tree {paths.path('zeroshot_dir')} has {n_folders} class folders but "
            f"{paths.path('zeroshot_classes')} names {len(zeroshot.classes)} classes; "
            "they must match one to one, in sorted folder order"
        )

    texts, txt2img, img2txt = retrieval_targets(retrieval_records)
    prompts = [t.format(c) for c in zeroshot.classes for t in zeroshot.templates]
    train_texts = [text for r in train_records for text in (r.caption, *r.paraphrases)]
    tokenizer = trial_tokenizer(
        cfg.model.text, train_texts + texts + prompts, max_length=cfg.max_length
    )

    retrieval_root = paths.path("retrieval_images")
    return TrialData(
        train=TrainPairs(train_records, paths.path("train_images"), cfg.image_size),
        retrieval_images=ImageList(
            [retrieval_root / r.image for r in retrieval_records], None, cfg.image_size
        ),
        retrieval_texts=texts,
        txt2img=txt2img,
        img2txt=img2txt,
        zeroshot_images=ImageList(
            [Path(p) for p, _ in zeroshot_files],
            [label for _, label in zeroshot_files],
            cfg.image_size,
        ),
        zeroshot=zeroshot,
        tokenizer=tokenizer,
    )
