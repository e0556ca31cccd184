"""Loaders of the real formats: caption cleaning, readers and their errors, datasets, collation."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.config import DataPaths
from trainables.data import (
    CLIP_MEAN,
    CLIP_STD,
    DataError,
    ImageList,
    RetrievalRecord,
    TrainPairs,
    TrainRecord,
    collate_pairs,
    list_image_folder,
    load_image,
    pre_caption,
    read_retrieval_annotations,
    read_train_annotations,
    read_zeroshot_classes,
    retrieval_targets,
)
from trainables.image_cache import prepare_image_cache
from trainables.synth import write_synthetic_dataset


def _write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _write_image(path: Path, colour=(255, 255, 255), size=(10, 20)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Hello, World!", "hello world"),
        ("A man's dog (big) *really*", "a mans dog big really"),
        ("well-known a/b", "well known a b"),
        ('<person> walks; #1 ~ ok? "yes": done.', "person walks 1 ok yes done"),
        ("  many   spaces\n\tend  ", "many spaces end"),
        ("", ""),
    ],
)
def test_pre_caption(raw, clean):
    assert pre_caption(raw) == clean


def test_pre_caption_keeps_max_words():
    assert pre_caption(" ".join(str(i) for i in range(40))) == " ".join(str(i) for i in range(30))
    assert pre_caption("One, two three", max_words=2) == "one two"


# --- readers --------------------------------------------------------------------------------------


def test_read_train_annotations(tmp_path):
    path = _write_json(
        tmp_path / "train.json",
        [
            {"image": "a.jpg", "caption": "A cat.", "image_id": 7},
            {"image": "b.jpg", "caption": "A dog", "image_id": "b", "paraphrases": ["a hound"]},
        ],
    )
    assert read_train_annotations(path) == [
        TrainRecord("a.jpg", "A cat.", "7"),
        TrainRecord("b.jpg", "A dog", "b", ("a hound",)),
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "file not found"),
        ("[{", "not valid JSON"),
        ('{"image": "a.jpg"}', "expected a non-empty array of rows"),
        ("[]", "found an empty array"),
        (
            '[{"image": "a", "caption": "c", "image_id": 1}, {"image": "b", "image_id": 2}]',
            "row 1 lacks 'caption' (each row needs image, caption, image_id)",
        ),
        ('[{"image": "a", "caption": "c", "image_id": null}]', "row 0: image_id must be"),
        ('[{"image": "a", "caption": "c", "image_id": 1, "paraphrases": "p"}]', "paraphrases"),
        ('["a.jpg"]', "row 0 is a str, not an object"),
    ],
)
def test_read_train_annotations_errors(tmp_path, content, problem):
    path = tmp_path / "train.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError) as excinfo:
        read_train_annotations(path)
    message = _one_line_error(excinfo)
    assert message.startswith(f"train annotations {path}: ")
    assert problem in message


def test_read_retrieval_annotations_accepts_string_and_list_captions(tmp_path):
    path = _write_json(
        tmp_path / "val.json",
        [{"image": "x.jpg", "caption": ["one", "two"]}, {"image": "y.jpg", "caption": "three"}],
    )
    assert read_retrieval_annotations(path) == [
        RetrievalRecord("x.jpg", ("one", "two")),
        RetrievalRecord("y.jpg", ("three",)),
    ]


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ([{"image": "x.jpg"}], "row 0 lacks 'caption'"),
        ([{"image": "x.jpg", "caption": []}], "row 0 has a malformed image or caption"),
        ([{"image": "x.jpg", "caption": ["a", 3]}], "row 0 has a malformed image or caption"),
    ],
)
def test_read_retrieval_annotations_errors(tmp_path, rows, problem):
    path = _write_json(tmp_path / "val.json", rows)
    with pytest.raises(DataError) as excinfo:
        read_retrieval_annotations(path)
    message = _one_line_error(excinfo)
    assert message.startswith(f"retrieval annotations {path}: {problem}")


def test_read_zeroshot_classes(tmp_path):
    path = _write_json(
        tmp_path / "classes.json", {"classes": ["tench", "goldfish"], "templates": ["a {}."]}
    )
    spec = read_zeroshot_classes(path)
    assert spec.classes == ("tench", "goldfish")
    assert spec.templates == ("a {}.",)


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        (["tench"], "found a JSON list"),
        ({"classes": ["tench"]}, "'templates' is missing"),
        ({"classes": ["tench"], "templates": ["a photo"]}, "template 'a photo' lacks '{}'"),
    ],
)
def test_read_zeroshot_classes_errors(tmp_path, obj, problem):
    path = _write_json(tmp_path / "classes.json", obj)
    with pytest.raises(DataError) as excinfo:
        read_zeroshot_classes(path)
    assert problem in _one_line_error(excinfo)


def test_list_image_folder_uses_sorted_class_folders(tmp_path):
    _write_image(tmp_path / "n02" / "b.png")
    _write_image(tmp_path / "n02" / "a.JPG")
    _write_image(tmp_path / "n01" / "sub" / "c.jpeg")
    (tmp_path / "n01" / "notes.txt").write_text("not an image")
    items = list_image_folder(tmp_path)
    assert [(Path(p).relative_to(tmp_path).as_posix(), label) for p, label in items] == [
        ("n01/sub/c.jpeg", 0),
        ("n02/a.JPG", 1),
        ("n02/b.png", 1),
    ]


def test_list_image_folder_errors(tmp_path):
    _write_image(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="found images but no class folders") as excinfo:
        list_image_folder(tmp_path / "flat")
    assert str(tmp_path / "flat") in _one_line_error(excinfo)
    (tmp_path / "empty" / "n01").mkdir(parents=True)
    with pytest.raises(DataError, match="class folder 'n01' has no"):
        list_image_folder(tmp_path / "empty")
    with pytest.raises(DataError, match="not a directory"):
        list_image_folder(tmp_path / "missing")


# --- images and datasets ----------------------------------------------------------------------


def test_load_image_resizes_and_normalises(tmp_path):
    path = _write_image(tmp_path / "white.png", colour=(255, 255, 255), size=(10, 20))
    image = load_image(path, 16)
    assert image.shape == (3, 16, 16)
    assert image.dtype == torch.float32
    expected = (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(image[:, 7, 9], expected)


def _pairs() -> TrainPairs:
    """Five pairs over decoded 8 px images; pairs 1 and 3 are unreadable."""
    records = [
        TrainRecord("x.png", "First, caption!", "x"),
        TrainRecord("corrupt.png", "broken", "c"),
        TrainRecord("x.png", "second caption of x", "x"),
        TrainRecord("missing.png", "gone", "m"),
        TrainRecord("y.png", "Y", "y"),
    ]
    pixels = np.arange(5 * 3 * 8 * 8, dtype=np.uint8).reshape(5, 3, 8, 8)
    ids = torch.arange(5, dtype=torch.int32).view(5, 1).expand(5, 4) + 10
    mask = torch.ones(5, 4, dtype=torch.uint8)
    return TrainPairs(records, pixels, np.array([True, False, True, False, True]), (ids, mask))


def test_train_pairs_dense_image_index_and_batched_access():
    pairs = _pairs()
    assert len(pairs) == 5
    assert pairs.num_images == 4
    batch = pairs.__getitems__([4, 0, 1, 2, 3])
    assert batch["image_index"].tolist() == [3, 0, 1, 0, 2]
    assert batch["readable"].tolist() == [True, True, False, True, False]
    assert batch["ids"][:, 0].tolist() == [14, 10, 11, 12, 13]
    assert batch["ids"].dtype == batch["mask"].dtype == torch.long
    assert batch["image"].dtype == torch.uint8
    assert torch.equal(batch["image"][0], torch.from_numpy(pairs.pixels[4]))


def test_collate_pairs_drops_and_counts_unreadable_images():
    pairs = _pairs()
    batch, dropped = collate_pairs(pairs.__getitems__(list(range(5))))
    assert dropped == 2
    assert batch is not None
    assert batch["image"].shape == (3, 3, 8, 8)
    assert batch["ids"][:, 0].tolist() == [10, 12, 14]
    assert "readable" not in batch
    assert batch["index"].tolist() == [0, 2, 4]
    assert batch["image_index"].tolist() == [0, 0, 3]
    assert batch["index"].dtype == batch["image_index"].dtype == torch.long
    assert collate_pairs(pairs.__getitems__([1, 3])) == (None, 2)


def test_image_list_normalises_and_labels():
    pixels = np.full((2, 3, 4, 4), 255, dtype=np.uint8)
    images = ImageList(pixels, [3, 4])
    assert images[1]["label"] == 4
    assert images[0]["index"] == 0
    expected = (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    torch.testing.assert_close(images[0]["image"][:, 1, 2], expected)
    assert ImageList(pixels, None)[0]["label"] == -1
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        ImageList(pixels, [0])


def test_an_unreadable_evaluation_image_is_a_data_error(tmp_path):
    root = tmp_path / "data"
    write_synthetic_dataset(root, n_train=4, n_retrieval=4, zeroshot_per_class=1)
    corrupt = root / "images" / "retrieval" / "000002.png"
    corrupt.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError) as excinfo:
        prepare_image_cache(DataPaths(str(root)), 8)
    assert _one_line_error(excinfo).startswith(f"evaluation image {corrupt}: unreadable")
    assert not list((root / ".clipstudy-cache").iterdir())  # nothing half-written


def test_retrieval_targets():
    records = [
        RetrievalRecord("a.jpg", ("A dog.", "a puppy")),
        RetrievalRecord("b.jpg", ("a cat",)),
        RetrievalRecord("c.jpg", ("one", "two", "Three!")),
    ]
    texts, txt2img, img2txt = retrieval_targets(records)
    assert texts == ["a dog", "a puppy", "a cat", "one", "two", "three"]
    assert txt2img.dtype == torch.long
    assert txt2img.tolist() == [0, 0, 1, 2, 2, 2]
    assert img2txt == [[0, 1], [2], [3, 4, 5]]
