"""Augmented views: deterministic under (seed, epoch, step), inside the pixel range, and the
text view is a real paraphrase whenever the record has one. Image views take uint8 pixels as
the image cache stores them."""

from __future__ import annotations

import random

import pytest
import torch

from trainables.data import CLIP_MEAN, CLIP_STD, TrainRecord, normalise, pre_caption
from trainables.views import ImageViews, image_operations, rewrite, text_views

MEAN = torch.tensor(CLIP_MEAN).view(3, 1, 1)
STD = torch.tensor(CLIP_STD).view(3, 1, 1)


def pixel_batch(seed: int = 0, size: int = 16) -> torch.Tensor:
    """(6, 3, size, size) uint8."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(256, (6, 3, size, size), generator=generator, dtype=torch.uint8)


@pytest.mark.parametrize("mode", ["batch", "sample"])
def test_image_views_are_deterministic_and_in_range(mode):
    views = ImageViews(16, mode)
    images = pixel_batch()
    first = views(images, seed=3, epoch=1, step=5)
    assert torch.equal(first, views(images, seed=3, epoch=1, step=5))
    assert first.shape == images.shape and first.dtype == torch.float32
    pixels = first * STD + MEAN
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    others = [views(images, seed=3, epoch=1, step=s) for s in range(6, 16)]
    assert any(not torch.equal(first, other) for other in others)


def test_image_views_leave_the_global_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    ImageViews(16)(pixel_batch(), seed=0, epoch=0, step=0)
    assert torch.equal(torch.rand(3), expected)


def test_batch_mode_applies_one_operation_to_every_image():
    """With one operation per batch, a flip flips every image or none."""
    views = ImageViews(16, "batch")
    images = pixel_batch()
    seen_flip = False
    for step in range(40):
        out = views(images, seed=0, epoch=0, step=step)
        pairs = zip(out, normalise(images), strict=True)
        flipped = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in pairs]
        assert all(flipped) or not any(flipped)
        seen_flip |= all(flipped)
    assert seen_flip


def test_every_operation_keeps_the_shape():
    pixels = torch.rand(2, 3, 20, 20)
    for name, op in image_operations(20).items():
        assert op(pixels).shape == pixels.shape, name


def test_text_views_use_paraphrases_when_present():
    records = [
        TrainRecord("a.png", "A red circle.", "a", ("a round red shape", "red disk, centered")),
        TrainRecord("b.png", "a small blue square at the top left", "b"),
    ]
    views = text_views(records, [0, 1], seed=1, epoch=0, step=0)
    assert views[0] in {pre_caption(p) for p in records[0].paraphrases}
    caption_words = pre_caption(records[1].caption).split()
    assert views[1] != pre_caption(records[1].caption)
    assert set(views[1].split()) <= set(caption_words)
    assert len(views[1].split()) == len(caption_words) - 1
    assert views == text_views(records, [0, 1], seed=1, epoch=0, step=0)
    drawn = {text_views(records, [0], seed=1, epoch=0, step=s)[0] for s in range(30)}
    assert drawn == {pre_caption(p) for p in records[0].paraphrases}


def test_rewrite_of_a_short_caption_keeps_its_words():
    assert sorted(rewrite("red circle", random.Random(0)).split()) == ["circle", "red"]
