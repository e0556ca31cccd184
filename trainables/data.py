"""Loaders of the real dataset formats (reference/losses.md §2.2, §10).

- Train annotations (CC3M, ALBEF style): a JSON array of rows
  ``{"image": path relative to the image root, "caption": str, "image_id": any JSON scalar,
  "paraphrases": [str, ...] (optional)}``; one row per (image, caption) pair.
- Retrieval annotations (COCO Karpathy style): a JSON array of
  ``{"image": relative path, "caption": [str, ...] or str}``; texts are numbered in file order.
- Zero-shot: an ImageFolder tree ``root/<class folder>/<image>`` whose sorted folder order is the
  order of ``classes`` in a JSON file ``{"classes": [str, ...], "templates": ["a photo of a {}.",
  ...]}``.

Images become float32 tensors (3, S, S): RGB, bicubic resize to S x S, scaled to [0, 1] and
normalised with the CLIP mean/std. Problems with the files raise :class:`DataError`, whose
message is one line naming the file, the problem and the fix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})

# What PIL raises for a missing, truncated or undecodable image file.
_UNREADABLE = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)
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


def read_train_annotations(path: str | Path) -> list[TrainRecord]:
    """Rows of a CC3M-style train JSON (see module docstring), in file order."""
    path, what = Path(path), "train annotations"
    fix = "each row needs image, caption, image_id"
    records = []
    for i, row in enumerate(_rows(path, what, fix)):
        for key in ("image", "caption", "image_id"):
            if key not in row:
                raise DataError(f"{what} {path}: row {i} lacks {key!r} ({fix})")
        if not isinstance(row["image"], str) or not isinstance(row["caption"], str):
            raise DataError(f"{what} {path}: row {i}: image and caption must be strings ({fix})")
        if not isinstance(row["image_id"], str | int | float):
            raise DataError(f"{what} {path}: row {i}: image_id must be a string or number ({fix})")
        if not _is_str_list(row.get("paraphrases", [])):
            raise DataError(f"{what} {path}: row {i}: paraphrases must be a list of strings")
        records.append(
            TrainRecord(
                row["image"],
                row["caption"],
                str(row["image_id"]),
                tuple(row.get("paraphrases", ())),
            )
        )
    return records


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


def load_image(path: str | Path, image_size: int) -> torch.Tensor:
    """The image as a float32 tensor (3, S, S), CLIP-normalised; PIL errors propagate."""
    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((image_size, image_size), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (pixels - mean) / std


class TrainPairs(Dataset):
    """Train pairs; item i = ``{"image": (3, S, S) tensor or None when the file is missing or
    unreadable, "caption": cleaned caption, "index": i, "image_index": dense index of the
    image_id, numbered in first-seen order}``."""

    def __init__(self, records: list[TrainRecord], image_root: str | Path, image_size: int):
        self.records = records
        self.image_root = Path(image_root)
        self.image_size = image_size
        dense: dict[str, int] = {}
        self.image_index = [dense.setdefault(r.image_id, len(dense)) for r in records]
        self._num_images = len(dense)

    @property
    def num_images(self) -> int:
        """Number of distinct image_ids."""
        return self._num_images

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        record = self.records[i]
        try:
            image = load_image(self.image_root / record.image, self.image_size)
        except _UNREADABLE:
            image = None
        return {
            "image": image,
            "caption": pre_caption(record.caption),
            "index": i,
            "image_index": self.image_index[i],
        }


class ImageList(Dataset):
    """Evaluation images; item i = ``{"image": (3, S, S), "label": int (-1 without labels),
    "index": i}``. An unreadable image raises DataError: evaluation data must be intact."""

    def __init__(self, paths: Sequence[str | Path], labels: Sequence[int] | None, image_size: int):
        if labels is not None and len(labels) != len(paths):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths = paths
        self.labels = labels
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        try:
            image = load_image(self.paths[i], self.image_size)
        except _UNREADABLE as err:
            problem = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(
                f"evaluation image {self.paths[i]}: unreadable: {problem} "
                "(replace or remove the file and its annotation)"
            ) from err
        label = -1 if self.labels is None else self.labels[i]
        return {"image": image, "label": label, "index": i}


def collate_pairs(batch: list[dict]) -> tuple[dict | None, int]:
    """Stack TrainPairs items, dropping those without an image. Returns (``{"image": (B, 3, S, S),
    "caption": list of B str, "index": (B,) long, "image_index": (B,) long}`` or None when every
    item was dropped, number dropped)."""
    kept = [item for item in batch if item["image"] is not None]
    dropped = len(batch) - len(kept)
    if not kept:
        return None, dropped
    return {
        "image": torch.stack([item["image"] for item in kept]),
        "caption": [item["caption"] for item in kept],
        "index": torch.tensor([item["index"] for item in kept], dtype=torch.long),
        "image_index": torch.tensor([item["image_index"] for item in kept], dtype=torch.long),
    }, dropped


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
