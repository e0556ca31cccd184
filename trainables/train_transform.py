"""The train-time transform of the main image view, batched on uint8 pixels (reference §2.2).

``"reference"`` is the reference protocol (reference/losses.md §2.2), each image with its own
draws: RandomResizedCrop(S, scale (0.5, 1), ratio (3/4, 4/3), bicubic) -> RandomHorizontalFlip
-> RandomAugment(N = 2, M = 7): two operations drawn with replacement from {Identity,
AutoContrast, Equalize, Brightness, Sharpness, ShearX, ShearY, TranslateX, TranslateY, Rotate},
each applied with probability 0.5 at level 7/10 (enhance factor 0.7 * 1.8 + 0.1 = 1.36; shear
+-0.21; translation +-7 px at 256 px, scaled with S; rotation +-21 degrees; the sign drawn per
image; geometric operations bilinear, filled with grey 128, as cv2.warpAffine does in the
reference) -> CLIP normalisation. ``"none"`` is the CLIP normalisation alone.

The pixels stay uint8 between operations, as in the reference. Crops and geometric operations
are one ``grid_sample`` per stage over the whole batch, with one affine map per image; the
colour operations are torchvision v2 kernels on the uint8 images that drew them. Everything
runs on the pixels' device. One difference from the reference: the crop is taken from the
cached S x S image (already resized), not from the original file.

Draws come from a generator seeded by (seed, epoch, step) (a stream apart from the AmCLR
views'), so the transform is the same on every run, on resume, and in every cell that shares
the seed; a data-parallel rank draws for the whole global batch and keeps its rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from trainables.data import normalise
from trainables.views import step_seed

TRAIN_TRANSFORMS = ("none", "reference")
CROP_SCALE = (0.5, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
CROP_TRIES = 10  # as torchvision's RandomResizedCrop.get_params
AUGMENT_OPS = (
    "identity",
    "autocontrast",
    "equalize",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
)
AUGMENT_N, AUGMENT_P, LEVEL = 2, 0.5, 7 / 10
ENHANCE = LEVEL * 1.8 + 0.1
SHEAR, ROTATE_DEGREES, TRANSLATE_AT_256 = LEVEL * 0.3, LEVEL * 30, LEVEL * 10
FILL = 128
GEOMETRIC_OPS = tuple(
    i for i, op in enumerate(AUGMENT_OPS) if op.split("_")[0] in ("shear", "translate", "rotate")
)
_STREAM = 1 << 62  # offsets the seeds from the views' (which stay far below it)

COLOUR_OPS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "autocontrast": TF.autocontrast,
    "equalize": TF.equalize,
    "brightness": lambda images: TF.adjust_brightness(images, ENHANCE),
    "sharpness": lambda images: TF.adjust_sharpness(images, ENHANCE),
}


def check_train_transform(name: str) -> None:
    """ValueError (one line) unless ``name`` is in TRAIN_TRANSFORMS."""
    if name not in TRAIN_TRANSFORMS:
        raise ValueError(
            f"data.train_transform must be one of {', '.join(TRAIN_TRANSFORMS)}, got {name!r}"
        )


def crop_boxes(generator: torch.Generator, n: int, size: int) -> torch.Tensor:
    """(n, 4) float64 boxes (top, left, height, width) in pixels of an S x S image, drawn as
    torchvision's RandomResizedCrop.get_params does: up to 10 tries of an area fraction in
    CROP_SCALE and a log-uniform aspect ratio w/h in CROP_RATIO, the first that fits; the whole
    image when none fits (the fallback for a square image)."""
    area = size * size * torch.empty(n, CROP_TRIES).uniform_(*CROP_SCALE, generator=generator)
    log_ratio = torch.empty(n, CROP_TRIES).uniform_(
        math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator=generator
    )
    ratio = log_ratio.exp()
    width = (area * ratio).sqrt().round()
    height = (area / ratio).sqrt().round()
    fits = (width > 0) & (width <= size) & (height > 0) & (height <= size)
    first = torch.where(fits.any(1), fits.int().argmax(1), -1)
    position = torch.rand(n, 2, generator=generator)
    boxes = torch.tensor([[0.0, 0.0, size, size]], dtype=torch.float64).repeat(n, 1)
    chosen = (first >= 0).nonzero().squeeze(1)
    h = height[chosen, first[chosen]].double()
    w = width[chosen, first[chosen]].double()
    top = (position[chosen, 0].double() * (size - h + 1)).floor()
    left = (position[chosen, 1].double() * (size - w + 1)).floor()
    boxes[chosen] = torch.stack([top, left, h, w], dim=1)
    return boxes


def crop_maps(boxes: torch.Tensor, flip: torch.Tensor, size: int) -> torch.Tensor:
    """(n, 3, 3) maps from output pixel (x, y, 1) to source pixel of each box resized to S x S
    (pixel centres at integers, align_corners=False as torchvision's resize), mirrored in x
    where ``flip``: src_x = left + (x' + 0.5) * w / S - 0.5 with x' = x or S - 1 - x."""
    top, left, h, w = boxes.unbind(1)
    sign = 1.0 - 2.0 * flip.double()
    maps = torch.zeros(len(boxes), 3, 3, dtype=torch.float64)
    maps[:, 0, 0] = sign * w / size
    maps[:, 0, 2] = left + torch.where(flip, (size - 0.5) * w / size, 0.5 * w / size) - 0.5
    maps[:, 1, 1] = h / size
    maps[:, 1, 2] = top + 0.5 * h / size - 0.5
    maps[:, 2, 2] = 1.0
    return maps


def augment_maps(ops: torch.Tensor, signs: torch.Tensor, size: int) -> torch.Tensor:
    """(n, 3, 3) forward maps (source pixel -> output pixel, as cv2.warpAffine's matrix in the
    reference) of the geometric operations ``ops`` (indices into AUGMENT_OPS; identity for the
    others) with magnitudes of sign ``signs`` (+-1): shear x' = x + s y (about the origin),
    translation by +-7 px at 256 px, rotation by +-21 degrees about (S/2, S/2)."""
    n = len(ops)
    maps = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    signs = signs.double()
    name = [AUGMENT_OPS[o] for o in ops.tolist()]
    shift = TRANSLATE_AT_256 * size / 256
    angle = torch.deg2rad(ROTATE_DEGREES * signs)
    cos, sin = angle.cos(), angle.sin()
    centre = size / 2
    for i, op in enumerate(name):
        if op == "shear_x":
            maps[i, 0, 1] = SHEAR * signs[i]
        elif op == "shear_y":
            maps[i, 1, 0] = SHEAR * signs[i]
        elif op == "translate_x":
            maps[i, 0, 2] = shift * signs[i]
        elif op == "translate_y":
            maps[i, 1, 2] = shift * signs[i]
        elif op == "rotate":  # cv2.getRotationMatrix2D(centre, angle, 1): counter-clockwise
            c, s = cos[i], sin[i]
            maps[i, :2] = torch.stack(
                [
                    torch.stack([c, s, (1 - c) * centre - s * centre]),
                    torch.stack([-s, c, s * centre + (1 - c) * centre]),
                ]
            )
    return maps


def warp(
    images: torch.Tensor, source_maps: torch.Tensor, mode: str, fill: int | None
) -> torch.Tensor:
    """uint8 (n, 3, S, S) resampled at ``source_maps`` (n, 3, 3) (output pixel -> source
    pixel): out(p) = in(M p), interpolated by ``mode``; outside the image the border pixel
    (``fill`` None) or the constant ``fill`` (as interpolating an image padded with it)."""
    n, _, height, width = images.shape
    to_unit = torch.tensor(  # pixel x -> (2x + 1) / W - 1, grid_sample's align_corners=False
        [[2 / width, 0, 1 / width - 1], [0, 2 / height, 1 / height - 1], [0, 0, 1]],
        dtype=torch.float64,
    )
    theta = to_unit @ source_maps @ torch.linalg.inv(to_unit)
    grid = F.affine_grid(
        theta[:, :2].to(images.device, torch.float32), [n, 3, height, width], align_corners=False
    )
    pixels = images.float()
    padding = "border" if fill is None else "zeros"
    out = F.grid_sample(pixels, grid, mode=mode, padding_mode=padding, align_corners=False)
    if fill is not None:
        inside = torch.ones_like(pixels[:, :1])
        covered = F.grid_sample(inside, grid, mode=mode, padding_mode="zeros", align_corners=False)
        out = out + fill * (1 - covered)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def reference_augment(
    images: torch.Tensor, generator: torch.Generator, rows: slice, total: int
) -> torch.Tensor:
    """The reference transform of uint8 ``images`` (b, 3, S, S) before normalisation, uint8
    (b, 3, S, S): rows ``rows`` of a batch of ``total`` images whose draws come from
    ``generator`` (a CPU generator)."""
    size = images.shape[-1]
    boxes = crop_boxes(generator, total, size)[rows]
    flip = (torch.rand(total, generator=generator) < 0.5)[rows]
    ops = torch.randint(len(AUGMENT_OPS), (total, AUGMENT_N), generator=generator)[rows]
    applied = (torch.rand(total, AUGMENT_N, generator=generator) < AUGMENT_P)[rows]
    signs = torch.where(torch.rand(total, AUGMENT_N, generator=generator) < 0.5, -1, 1)[rows]

    out = warp(images, crop_maps(boxes, flip, size), "bicubic", fill=None)
    for slot in range(AUGMENT_N):
        op, on = ops[:, slot], applied[:, slot]
        for name, kernel in COLOUR_OPS.items():
            chosen = (on & (op == AUGMENT_OPS.index(name))).nonzero().squeeze(1)
            if len(chosen):
                index = chosen.to(out.device)
                out[index] = kernel(out[index])
        moved = (on & torch.isin(op, torch.tensor(GEOMETRIC_OPS))).nonzero().squeeze(1)
        if len(moved):
            forward = augment_maps(op[moved], signs[moved, slot], size)
            index = moved.to(out.device)
            out[index] = warp(out[index], torch.linalg.inv(forward), "bilinear", fill=FILL)
    return out


class TrainTransform:
    """Maps uint8 pixels (b, 3, S, S) to the CLIP-normalised main view (b, 3, S, S) in torch's
    default float dtype, by ``name`` in TRAIN_TRANSFORMS (module docstring)."""

    def __init__(self, name: str = "none") -> None:
        check_train_transform(name)
        self.name = name

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
        """The main view of ``images``, rows ``rows`` of a global batch of ``batch_size``
        (default: the whole batch) whose draws come from (seed, epoch, step)."""
        if self.name == "none":
            return normalise(images)
        generator = torch.Generator().manual_seed(
            (step_seed(seed, epoch, step) + _STREAM) % (1 << 63)
        )
        return normalise(reference_augment(images, generator, rows, batch_size or len(images)))
