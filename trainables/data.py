"""Loaders of the real dataset formats (reference/losses.md §2.2, §10).

- Train annotations (CC3M, ALBEF style): a JSON array of rows
  ``{"image": path relative to the image root, "caption": str, "image_id": any JSON scalar,
  "paraphrases": [str, ...] (optional)}``; one row per (image, caption) pair.
- Retrieval annotations (COCO Karpathy style): a JSON array of
  ``{"image": relative path, "caption": [str, ...] or str}``; texts are numbered in file order.
- Zero-shot: an ImageFolder tree ``root/<class folder>/<image>`` whose sorted folder order is the
  order of ``classes`` in a JSON file ``{"classes": [str, ...], "templates": ["a photo of a {}.",
  ...]}``.

Images are decoded once into uint8 pixels (3, S, S): RGB, bicubic resize to S x S
(:func:`decode_image`, cached by :mod:`trainables.image_cache`); :func:`normalise` maps them
to float32 scaled to [0, 1] and normalised with the CLIP mean/std. Problems with the files
raise :class:`DataError`, whose message is one line naming the file, the problem and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})

# What PIL raises for a missing, truncated or undecodable image file.
UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
_DELETED_CHARACTERS = re.compile(r"[,.'!?\"()*#:;~]")


class DataError(ValueError):
    """A dataset file is missing or malformed; the message says which file, what and the fix."""


def pre_caption(caption: str, max_words: int = 30) -> str:
    """The reference caption cleaning: lower-case; delete , . ' ! ? " ( ) * # : ; ~; '-' and '/'
    become spaces; '<person>' becomes 'person'; whitespace collapsed and stripped; the first
    ``max_words`` words kept."""
    caption = _DELETED_CHARACTERS.sub("", caption.lower())
    caption = caption.replace("-", " ").replace("/", " ").replace("<person>", "person")
    return " ".join(caption.split()[:max_words])


@dataclass(frozen=True)
class TrainRecord:
    """One train pair; ``image`` is relative to the image root, ``image_id`` stringified."""

    image: str
    caption: str
    image_id: str
    paraphrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetrievalRecord:
    """One retrieval image and its captions (at least one)."""

    image: str
    captions: tuple[str, ...]


@dataclass(frozen=True)
class ZeroShotSpec:
    """Class names in label order and prompt templates, each containing '{}'."""

    classes: tuple[str, ...]
    templates: tuple[str, ...]


def _load_json(path: Path, what: str, fix: str) -> Any:
    if not path.is_file():
        raise DataError(f"{what} {path}: file not found (check the path and the working directory)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        problem = str(err).splitlines()[0]
        raise DataError(f"{what} {path}: not valid JSON: {problem} ({fix})") from err


def _rows(path: Path, what: str, fix: str) -> list[dict]:
    """The file's JSON array of objects, checked to be non-empty."""
    data = _load_json(path, what, fix)
    if not isinstance(data, list) or not data:
        found = "an empty array" if data == [] else f"a JSON {type(data).__name__}"
        raise DataError(f"{what} {path}: found {found}, expected a non-empty array of rows ({fix})")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(
                f"{what} {path}: row {i} is a {type(row).__name__}, not an object ({fix})"
            )
    return data


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_TRAIN_WHAT, _TRAIN_FIX = "train annotations", "each row needs image, caption, image_id"


def _train_record(row: dict, i: int, path: Path) -> TrainRecord:
    """Row ``i`` of train JSON ``path`` as a record, checked."""
    what, fix = _TRAIN_WHAT, _TRAIN_FIX
    for key in ("image", "caption", "image_id"):
        if key not in row:
            raise DataError(f"{what} {path}: row {i} lacks {key!r} ({fix})")
    if not isinstance(row["image"], str) or not isinstance(row["caption"], str):
        raise DataError(f"{what} {path}: row {i}: image and caption must be strings ({fix})")
    if not isinstance(row["image_id"], str | int | float):
        raise DataError(f"{what} {path}: row {i}: image_id must be a string or number ({fix})")
    if not _is_str_list(row.get("paraphrases", [])):
        raise DataError(f"{what} {path}: row {i}: paraphrases must be a list of strings")
    return TrainRecord(
        row["image"], row["caption"], str(row["image_id"]), tuple(row.get("paraphrases", ()))
    )


def read_train_annotations(path: str | Path) -> list[TrainRecord]:
    """Rows of a CC3M-style train JSON (see module docstring), in file order."""
    path = Path(path)
    return [
        _train_record(row, i, path) for i, row in enumerate(_rows(path, _TRAIN_WHAT, _TRAIN_FIX))
    ]


def sample_train_annotations(path: str | Path, count: int) -> tuple[int, list[TrainRecord]]:
    """(number of rows, ``count`` evenly spaced rows from first to last, each checked) of a
    train JSON: the schema check of a file too large to check row by row in the driver."""
    path = Path(path)
    rows = _rows(path, _TRAIN_WHAT, _TRAIN_FIX)
    picked = sorted({round(k * (len(rows) - 1) / max(count - 1, 1)) for k in range(count)})
    return len(rows), [_train_record(rows[i], i, path) for i in picked]


def read_retrieval_annotations(path: str | Path) -> list[RetrievalRecord]:
    """Rows of a COCO-Karpathy-style retrieval JSON; a string caption is one caption."""
    path, what = Path(path), "retrieval annotations"
    fix = "each row needs image and caption, a string or a list of strings"
    records = []
    for i, row in enumerate(_rows(path, what, fix)):
        for key in ("image", "caption"):
            if key not in row:
                raise DataError(f"{what} {path}: row {i} lacks {key!r} ({fix})")
        captions = [row["caption"]] if isinstance(row["caption"], str) else row["caption"]
        if not isinstance(row["image"], str) or not _is_str_list(captions) or not captions:
            raise DataError(f"{what} {path}: row {i} has a malformed image or caption ({fix})")
        records.append(RetrievalRecord(row["image"], tuple(captions)))
    return records


def read_zeroshot_classes(path: str | Path) -> ZeroShotSpec:
    """Class names (in folder order) and prompt templates of a zero-shot JSON."""
    path, what = Path(path), "zero-shot classes"
    fix = 'expected {"classes": [names in folder order], "templates": ["a photo of a {}.", ...]}'
    data = _load_json(path, what, fix)
    if not isinstance(data, dict):
        raise DataError(f"{what} {path}: found a JSON {type(data).__name__} ({fix})")
    for key in ("classes", "templates"):
        if not _is_str_list(data.get(key)) or not data[key]:
            raise DataError(f"{what} {path}: {key!r} is missing or not a list of strings ({fix})")
    for template in data["templates"]:
        if "{}" not in template:
            raise DataError(f"{what} {path}: template {template!r} lacks '{{}}' ({fix})")
    return ZeroShotSpec(tuple(data["classes"]), tuple(data["templates"]))


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def list_image_folder(root: str | Path) -> list[tuple[str, int]]:
    """(image path, label) pairs of an ImageFolder tree: label = index of the class folder in
    sorted order; images found recursively inside each class folder, sorted."""
    root, what = Path(root), "image folder"
    fix = "expected root/<class folder>/<image>, one folder per class in class-list order"
    if not root.is_dir():
        raise DataError(f"{what} {root}: not a directory ({fix})")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not class_dirs:
        found = "images but no class folders" if any(map(_is_image, root.iterdir())) else "nothing"
        raise DataError(f"{what} {root}: found {found} ({fix})")
    items: list[tuple[str, int]] = []
    for label, class_dir in enumerate(class_dirs):
        images = sorted(p for p in class_dir.rglob("*") if _is_image(p))
        if not images:
            extensions = "/".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))
            raise DataError(f"{what} {root}: class folder {class_dir.name!r} has no {extensions}")
        items.extend((str(p), label) for p in images)
    return items


def decode_image(source: str | Path | BinaryIO, image_size: int) -> np.ndarray:
    """The image file (a path or an open binary file) as uint8 pixels (3, S, S): RGB, bicubic
    resize to S x S. PIL errors propagate."""
    with Image.open(source) as image:
        rgb = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1))


def normalise_unit(pixels: torch.Tensor) -> torch.Tensor:
    """float32 pixels in [0, 1] (..., 3, S, S) -> ``(p - mean) / std`` with the CLIP mean/std."""
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(3, 1, 1)
    return (pixels - mean) / std


def normalise(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (..., 3, S, S) -> ``(p / 255 - mean) / std`` (CLIP mean/std) in torch's
    default float dtype (float32 unless a test sets float64), on the pixels' device."""
    return normalise_unit(pixels.to(torch.get_default_dtype()) / 255.0)


def load_image(path: str | Path, image_size: int) -> torch.Tensor:
    """The image as a float32 tensor (3, S, S), CLIP-normalised; PIL errors propagate."""
    return normalise(torch.from_numpy(decode_image(path, image_size)))


def unreadable_problem(err: BaseException) -> str:
    """The first line of a PIL error, or its type when it has no message."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class TrainPairs(Dataset):
    """Train pairs over decoded pixels and tokenized captions: ``pixels`` (N, 3, S, S) uint8 (a
    memory-mapped array of the image cache), ``readable`` (N,) bool (False where the file was
    missing or unreadable), ``tokens`` = (ids, attention mask), each (N, L), the captions
    tokenized once. Batched access (the DataLoader calls ``__getitems__``) returns
    ``{"image": (B, 3, S, S) uint8, "readable": (B,) bool, "ids": (B, L) long, "mask": (B, L)
    long, "index": (B,) long, "image_index": (B,) long dense index of the image_id, numbered in
    first-seen order}``; :func:`collate_pairs` then drops the unreadable ones."""

    def __init__(
        self,
        records: list[TrainRecord],
        pixels: np.ndarray,
        readable: np.ndarray,
        tokens: tuple[torch.Tensor, torch.Tensor],
    ):
        sizes = {len(records), len(pixels), len(readable), len(tokens[0]), len(tokens[1])}
        if len(sizes) != 1:
            raise ValueError(f"{len(records)} records but {sorted(sizes)} images/flags/tokens")
        self.records = records
        self.pixels, self.readable, self.tokens = pixels, readable, tokens
        dense: dict[str, int] = {}
        image_index = [dense.setdefault(r.image_id, len(dense)) for r in records]
        self.image_index = torch.tensor(image_index, dtype=torch.long)
        self._num_images = len(dense)

    @property
    def num_images(self) -> int:
        """Number of distinct image_ids."""
        return self._num_images

    def __len__(self) -> int:
        return len(self.records)

    def __getitems__(self, indices: list[int]) -> dict:
        index = torch.tensor(indices, dtype=torch.long)
        ids, mask = self.tokens
        return {
            "image": torch.from_numpy(np.ascontiguousarray(self.pixels[indices])),
            "readable": torch.from_numpy(np.asarray(self.readable[indices], dtype=bool)),
            "ids": ids[index].long(),
            "mask": mask[index].long(),
            "index": index,
            "image_index": self.image_index[index],
        }

    def __getitem__(self, i: int) -> dict:
        return self.__getitems__([i])


class ImageList(Dataset):
    """Evaluation images over decoded pixels (n, 3, S, S) uint8; item i = ``{"image": (3, S, S)
    float32 CLIP-normalised, "label": int (-1 without labels), "index": i}``."""

    def __init__(self, pixels: np.ndarray, labels: Sequence[int] | None):
        if labels is not None and len(labels) != len(pixels):
            raise ValueError(f"{len(pixels)} images but {len(labels)} labels")
        self.pixels = pixels
        self.labels = labels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> dict:
        label = -1 if self.labels is None else self.labels[i]
        return {
            "image": normalise(torch.from_numpy(np.array(self.pixels[i]))),
            "label": label,
            "index": i,
        }


def collate_pairs(batch: Any) -> tuple[dict | None, int]:
    """Drop the unreadable pairs of a :class:`TrainPairs` batch (the dict its ``__getitems__``
    returns; typed Any as DataLoader's collate_fn). Returns (the batch without ``readable``,
    B' <= B pairs, or None when every pair was unreadable; the number dropped)."""
    keep = batch.pop("readable")
    dropped = len(keep) - int(keep.sum())
    if dropped == len(keep):
        return None, dropped
    if dropped:
        batch = {key: value[keep] for key, value in batch.items()}
    return batch, dropped


def retrieval_targets(
    records: list[RetrievalRecord],
) -> tuple[list[str], torch.Tensor, list[list[int]]]:
    """Captions flattened in file order, cleaned by pre_caption. Returns (texts, txt2img: (n_txt,)
    long image index of each text, img2txt: the text indices of each image)."""
    texts: list[str] = []
    txt2img: list[int] = []
    img2txt: list[list[int]] = []
    for image_index, record in enumerate(records):
        img2txt.append(list(range(len(texts), len(texts) + len(record.captions))))
        texts.extend(pre_caption(c) for c in record.captions)
        txt2img.extend([image_index] * len(record.captions))
    return texts, torch.tensor(txt2img, dtype=torch.long), img2txt
