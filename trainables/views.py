"""Augmented views for AmCLR/xAmCLR: a transformed image x' and a paraphrased caption t'.

Image views apply one operation of the reference set (reference/losses.md §4.3) with
torchvision transforms v2 to a batch of uint8 pixels (as the image cache stores them) scaled
to [0, 1], on the batch's device, then CLIP-normalise the result: Gaussian blur (3x3, sigma
0.5), horizontal flip, vertical flip, Gaussian noise (sigma 0.05), brightness x U(0.8, 1.2),
contrast x U(0.8, 1.2), sharpening (factor 1.5), center crop to 90 % resized back, center crop
to 90 % zero-padded back. As in the reference, one operation is drawn per batch
(``mode="batch"``), or one per image (``mode="sample"``).

Text views use a real paraphrase of the caption when the record has any (the built-in dataset
has several wordings per image; real train JSON may carry a ``paraphrases`` list), and only
otherwise a light rule-based rewrite: dropping one word and swapping two neighbouring words.

Every draw comes from a generator seeded by (seed, epoch, step), so the views are the same on
every run, on resume, and in every cell of a comparison that shares the seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from trainables.data import TrainRecord, normalise_unit, pre_caption

VIEW_MODES = ("batch", "sample")


def _center_crop_resized(size: int) -> v2.Transform:
    return v2.Compose([v2.CenterCrop(round(0.9 * size)), v2.Resize(size, antialias=True)])


def _center_crop_padded(size: int) -> v2.Transform:
    crop = round(0.9 * size)
    left = (size - crop) // 2
    return v2.Compose(
        [v2.CenterCrop(crop), v2.Pad([left, left, size - crop - left, size - crop - left])]
    )


def image_operations(size: int) -> dict[str, v2.Transform]:
    """The reference set of image operations for (..., 3, size, size) pixels in [0, 1]."""
    return {
        "blur": v2.GaussianBlur(3, sigma=0.5),
        "hflip": v2.RandomHorizontalFlip(1.0),
        "vflip": v2.RandomVerticalFlip(1.0),
        "noise": v2.GaussianNoise(sigma=0.05, clip=True),
        "brightness": v2.ColorJitter(brightness=(0.8, 1.2)),
        "contrast": v2.ColorJitter(contrast=(0.8, 1.2)),
        "sharpen": v2.RandomAdjustSharpness(1.5, p=1.0),
        "crop": _center_crop_resized(size),
        "crop_pad": _center_crop_padded(size),
    }


def step_seed(seed: int, epoch: int, step: int) -> int:
    """The seed of the random draws of (seed, epoch, step)."""
    return (seed * 1_000_003 + epoch) * 1_000_033 + step


class ImageViews:
    """Maps a batch of uint8 pixels (B, 3, S, S) to CLIP-normalised augmented views
    (B, 3, S, S) float32."""

    def __init__(self, size: int, mode: str = "batch") -> None:
        if mode not in VIEW_MODES:
            raise ValueError(f"view mode must be one of {', '.join(VIEW_MODES)}, got {mode!r}")
        self.mode = mode
        self.operations = list(image_operations(size).values())

    def __call__(
        self,
        images: torch.Tensor,
        *,
        seed: int,
        epoch: int,
        step: int,
        rows: slice = slice(None),
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """The views of ``images``, rows ``rows`` of a batch of ``batch_size`` (default: the
        whole batch) whose draws come from (seed, epoch, step): a data-parallel rank gets the
        views its rows get in one process, by viewing a batch of ``batch_size`` that holds its
        images in ``rows`` (the random draws depend on the batch's shape, not on the other
        images; the cost is that of the whole batch)."""
        if batch_size is not None and batch_size != len(images):
            batch = images.new_zeros((batch_size, *images.shape[1:]))
            batch[rows] = images
            return self(batch, seed=seed, epoch=epoch, step=step)[rows]
        pixels = images.to(torch.get_default_dtype()) / 255.0  # uint8 in, normalised views out
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(step_seed(seed, epoch, step))
            if self.mode == "batch":
                op = self.operations[int(torch.randint(len(self.operations), ()))]
                viewed = op(pixels)
            else:
                ops = torch.randint(len(self.operations), (len(pixels),)).tolist()
                viewed = torch.stack(
                    [self.operations[o](p) for o, p in zip(ops, pixels, strict=True)]
                )
        return normalise_unit(viewed.clamp(0.0, 1.0))


def rewrite(caption: str, rng: random.Random) -> str:
    """A light rule-based rewrite: drop one word, then swap two neighbouring words."""
    words = caption.split()
    if len(words) > 3:
        del words[rng.randrange(len(words))]
    if len(words) > 2:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def text_views(
    records: Sequence[TrainRecord], indices: Sequence[int], *, seed: int, epoch: int, step: int
) -> list[str]:
    """One paraphrase per pair ``indices`` (cleaned like captions): a paraphrase drawn from
    the record's list, or a rule-based rewrite of its caption when it has none."""
    rng = random.Random(step_seed(seed, epoch, step))
    views = []
    for i in indices:
        record = records[i]
        if record.paraphrases:
            views.append(pre_caption(rng.choice(record.paraphrases)))
        else:
            views.append(rewrite(pre_caption(record.caption), rng))
    return views
