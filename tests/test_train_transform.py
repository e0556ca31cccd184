"""The main view's train transform: "none" is the CLIP normalisation, "reference" is
deterministic under (seed, epoch, step), stays in the uint8 pixel range, crops within the
reference's scale bounds, matches torchvision's resized crop, and a trial with it repeats."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import BASE, _no_ray, expect_usage_error  # noqa: F401
from test_trial import run, tiny_config, without_timings
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from study.config import load_config
from trainables.config import DataPaths
from trainables.data import CLIP_MEAN, CLIP_STD, normalise
from trainables.train_transform import (
    AUGMENT_OPS,
    CROP_RATIO,
    TrainTransform,
    augment_maps,
    crop_boxes,
    crop_maps,
    warp,
)

MEAN = torch.tensor(CLIP_MEAN).view(3, 1, 1)
STD = torch.tensor(CLIP_STD).view(3, 1, 1)
WHERE = {"seed": 3, "epoch": 1, "step": 5}


def pixel_batch(n: int = 8, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) uint8 with structure (a gradient plus noise), so crops differ."""
    generator = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 200, size).view(1, 1, 1, size) + torch.zeros(n, 3, size, 1)
    noise = torch.randint(0, 55, (n, 3, size, size), generator=generator)
    return (ramp + noise).to(torch.uint8)


def test_none_is_the_clip_normalisation():
    images = pixel_batch()
    assert torch.equal(TrainTransform("none")(images, **WHERE), normalise(images))


def test_reference_gives_normalised_uint8_pixels_of_the_same_shape():
    images = pixel_batch()
    out = TrainTransform("reference")(images, **WHERE)
    assert out.shape == images.shape and out.dtype == torch.float32
    pixels = (out * STD + MEAN) * 255
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
    assert torch.allclose(pixels, pixels.round(), atol=1e-3)  # uint8 values, normalised
    assert not torch.equal(out, normalise(images))


def test_reference_is_deterministic_and_leaves_the_global_rng_alone():
    images = pixel_batch()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    reference = TrainTransform("reference")
    first = reference(images, **WHERE)
    assert torch.equal(torch.rand(3), expected)
    assert torch.equal(first, reference(images, **WHERE))
    for other in ({"step": 6}, {"epoch": 2}, {"seed": 4}):
        assert not torch.equal(first, reference(images, **(WHERE | other)))


def test_a_data_parallel_share_gets_its_rows_of_the_global_batch():
    images = pixel_batch(8)
    reference = TrainTransform("reference")
    whole = reference(images, **WHERE)
    share = reference(images[4:], **WHERE, rows=slice(4, 8), batch_size=8)
    assert torch.equal(share, whole[4:])


@pytest.mark.parametrize("size", [32, 256])
def test_crop_boxes_hold_the_scale_and_ratio_bounds(size):
    boxes = crop_boxes(torch.Generator().manual_seed(0), 4000, size)
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= size).all() and (left + w <= size).all()
    area = h * w / size**2
    # width and height are rounded to pixels: the area moves by at most ~1/S
    assert area.min() >= 0.5 - 1 / size and area.max() <= 1.0
    assert area.min() < 0.52 and area.max() > 0.97  # the whole range is drawn
    ratio = w / h
    slack = 2 / math.sqrt(0.5 * size**2)
    assert ratio.min() >= CROP_RATIO[0] - slack and ratio.max() <= CROP_RATIO[1] + slack
    assert len(set(zip(top.tolist(), left.tolist(), strict=True))) > 100


def test_the_whole_box_is_the_image_and_its_flip():
    images = pixel_batch(2)
    whole = torch.tensor([[0.0, 0.0, 32, 32]] * 2, dtype=torch.float64)
    flips = torch.tensor([False, True])
    out = warp(images, crop_maps(whole, flips, 32), "bicubic", fill=None)
    assert torch.equal(out[0], images[0]) and torch.equal(out[1], images[1].flip(-1))


def test_a_crop_matches_torchvision_resized_crop_inside_the_box():
    """Bicubic, align_corners=False: the same as torchvision's crop + resize, except near the
    box's edge (torchvision pads at the box edge, the warp reads the pixels beyond it)."""
    images = pixel_batch(1, 32)
    top, left, h, w = 5, 7, 20, 18
    box = torch.tensor([[top, left, h, w]], dtype=torch.float64)
    ours = warp(images, crop_maps(box, torch.tensor([False]), 32), "bicubic", fill=None)
    theirs = TF.resized_crop(
        images.float(), top, left, h, w, [32, 32], InterpolationMode.BICUBIC, antialias=False
    )
    theirs = theirs.round().clamp(0, 255)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    assert (ours[inner].float() - theirs[inner]).abs().max() <= 1


def test_translation_shifts_by_whole_pixels_and_fills_grey():
    """At 256 px TranslateX is 7 px, as in the reference: out[x + 7] = in[x], grey before."""
    images = pixel_batch(1, 256)
    forward = augment_maps(torch.tensor([AUGMENT_OPS.index("translate_x")]), torch.ones(1), 256)
    out = warp(images, torch.linalg.inv(forward), "bilinear", fill=128)
    assert torch.equal(out[..., 7:], images[..., :-7])
    assert (out[..., :7] == 128).all()


def test_shear_keeps_the_first_row_and_rotation_its_centre():
    images = pixel_batch(1, 256)
    shear = augment_maps(torch.tensor([AUGMENT_OPS.index("shear_x")]), torch.ones(1), 256)
    out = warp(images, torch.linalg.inv(shear), "bilinear", fill=128)
    assert torch.equal(out[..., 0, :], images[..., 0, :])
    assert not torch.equal(out[..., -1, :], images[..., -1, :])
    rotate = augment_maps(torch.tensor([AUGMENT_OPS.index("rotate")]), -torch.ones(1), 256)
    out = warp(images, torch.linalg.inv(rotate), "bilinear", fill=128)
    assert torch.equal(out[..., 128, 128], images[..., 128, 128])
    assert (out[..., 0, 0] == 128).all()  # the corner comes from outside the image


def test_a_trial_with_the_reference_transform_repeats(tiny_dataset):
    data = DataPaths(str(tiny_dataset), train_transform="reference")
    cfg = tiny_config(tiny_dataset, data=data, epochs=1)
    first = [without_timings(m) for m in run(cfg)]
    assert first == [without_timings(m) for m in run(cfg)]
    plain = [without_timings(m) for m in run(tiny_config(tiny_dataset, epochs=1))]
    assert first[0]["train_loss"] != plain[0]["train_loss"]


def test_an_unknown_transform_is_one_line_before_any_trial(capsys, tmp_path, tiny_dataset):
    config = tmp_path / "study.toml"
    data = f'dir = "{tiny_dataset}"\ntrain_transform = "randaug"'
    config.write_text(BASE.replace('dir = "DATA_DIR"', data))
    runs = tmp_path / "runs"
    argv = ["sweep", str(config), "--set", f"study.runs_dir={json.dumps(str(runs))}"]
    expect_usage_error(capsys, argv, "data.train_transform", "none, reference", "'randaug'")
    assert not runs.exists()


def test_the_seeds_gpu_study_uses_the_reference_transform_and_the_demo_none():
    configs = Path(__file__).resolve().parents[1] / "configs"
    assert load_config(configs / "seeds-gpu.toml").trial.data.train_transform == "reference"
    assert load_config(configs / "demo.toml").trial.data.train_transform == "none"
