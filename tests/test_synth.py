"""The built-in dataset: deterministic, in the real formats, and captions that match the images."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainables.config import DataPaths, TrialConfig
from trainables.data import (
    list_image_folder,
    pre_caption,
    read_retrieval_annotations,
    read_train_annotations,
    read_zeroshot_classes,
)
from trainables.synth import (
    BACKGROUNDS,
    COLOURS,
    POSITION_WORDS,
    SHAPE_WORDS,
    SHAPES,
    SIZE_WORDS,
    ZEROSHOT_TEMPLATES,
    Scene,
    SceneObject,
    describe,
    render,
    write_synthetic_dataset,
)
from trainables.trial_data import load_trial_data

SMALL = {"n_train": 6, "n_retrieval": 3, "zeroshot_per_class": 1}
COLOUR_WORDS = set(COLOURS) | set(BACKGROUNDS)
N_CLASSES = len(COLOURS) * len(SHAPES)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _colour_words(caption: str) -> set[str]:
    return set(pre_caption(caption).split()) & COLOUR_WORDS


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    summary = write_synthetic_dataset(tmp_path / "a", seed=3, **SMALL)
    write_synthetic_dataset(tmp_path / "b", seed=3, **SMALL)
    write_synthetic_dataset(tmp_path / "c", seed=4, **SMALL)
    a, b, c = (_files(tmp_path / name) for name in "abc")
    # images + train.json, retrieval.json, classes.json, README
    assert len(a) == 6 + 3 + N_CLASSES + 4
    assert a == b
    assert a.keys() == c.keys()
    assert a["train.json"] != c["train.json"]
    differing = [k for k in a if k.endswith(".png") and a[k] != c[k]]
    assert len(differing) == 6 + 3 + N_CLASSES
    assert summary == {
        "seed": 3,
        "train_images": 6,
        "train_captions": 30,
        "retrieval_images": 3,
        "retrieval_captions": 15,
        "zeroshot_classes": N_CLASSES,
        "zeroshot_images": N_CLASSES,
    }


def test_refuses_non_empty_dir_and_bad_caption_count(tmp_path):
    (tmp_path / "stale.txt").write_text("x")
    with pytest.raises(FileExistsError):
        write_synthetic_dataset(tmp_path, **SMALL)
    with pytest.raises(ValueError, match="captions_per_image"):
        write_synthetic_dataset(tmp_path / "new", captions_per_image=7, **SMALL)


def test_train_rows_hold_distinct_paraphrases_of_the_same_colours(tiny_dataset):
    records = read_train_annotations(tiny_dataset / "train.json")
    assert len(records) == 96
    assert len({r.image_id for r in records}) == 96
    for r in records:
        assert (tiny_dataset / r.image).is_file()
        captions = [r.caption, *r.paraphrases]
        assert len(set(captions)) == len(captions) == 5
        colours = _colour_words(r.caption)
        assert colours
        assert all(_colour_words(p) == colours for p in r.paraphrases)
        assert all(len(pre_caption(c, max_words=100).split()) <= 30 for c in captions)


def test_train_images_load_through_the_real_loader(tiny_dataset):
    pairs = load_trial_data(TrialConfig(data=DataPaths(str(tiny_dataset)))).train
    assert pairs.num_images == 96
    item = pairs[5]
    assert item["image"].shape == (1, 3, 32, 32)
    assert item["image_index"].tolist() == [5]


def test_retrieval_and_train_images_differ(tiny_dataset):
    retrieval = read_retrieval_annotations(tiny_dataset / "retrieval.json")
    assert len(retrieval) == 24
    assert all(len(set(r.captions)) == 5 for r in retrieval)
    train_records = read_train_annotations(tiny_dataset / "train.json")
    train = {(tiny_dataset / r.image).read_bytes() for r in train_records}
    assert not any((tiny_dataset / r.image).read_bytes() in train for r in retrieval)


def test_zeroshot_tree_matches_classes_json(tiny_dataset):
    spec = read_zeroshot_classes(tiny_dataset / "zeroshot" / "classes.json")
    assert len(spec.classes) == len(set(spec.classes)) == N_CLASSES
    assert "red circle" in spec.classes
    assert len(spec.templates) >= 5
    assert list(spec.templates) == list(ZEROSHOT_TEMPLATES)
    root = tiny_dataset / "zeroshot" / "val"
    folders = sorted(p.name for p in root.iterdir())
    assert folders == [f"c{i:03d}" for i in range(len(spec.classes))]
    items = list_image_folder(root)
    assert [label for _, label in items] == [i // 2 for i in range(2 * len(spec.classes))]
    with Image.open(items[0][0]) as image:
        assert (image.mode, image.size) == ("RGB", (32, 32))


def test_render_puts_the_named_colours_where_the_caption_says():
    scene = Scene((SceneObject("square", "red", "large", (1, 1)),), "gray", "plain")
    pixels = np.asarray(render(scene, 48)).astype(int)
    assert np.abs(pixels[36, 36] - COLOURS["red"]).max() <= 2  # centre of the bottom right cell
    for y, x in [(2, 2), (2, 45), (45, 2), (24, 24)]:
        assert np.abs(pixels[y, x] - BACKGROUNDS["gray"]).max() <= 2


def _mask(shape: str) -> np.ndarray:
    """Pixels of a large blue ``shape`` in the top left cell of a plain gray 32 px scene."""
    scene = Scene((SceneObject(shape, "blue", "large", (0, 0)),), "gray", "plain")
    pixels = np.asarray(render(scene, 32)).astype(int)
    return np.abs(pixels - COLOURS["blue"]).max(axis=2) <= 40


def test_every_shape_renders_large_and_distinct():
    masks = {shape: _mask(shape) for shape in SHAPES}
    for shape, mask in masks.items():
        assert mask.sum() >= 40, shape  # a large object covers tens of pixels at 32 px
        assert not mask[:, 16:].any() and not mask[16:, :].any(), shape  # inside its cell
    for i, a in enumerate(SHAPES):
        for b in SHAPES[i + 1 :]:
            assert (masks[a] != masks[b]).sum() >= 12, (a, b)
    assert not masks["ring"][8, 8] and masks["circle"][8, 8]  # the ring has a hole


def test_shape_synonyms_contain_the_class_name_and_prompts_name_the_size():
    assert set(SHAPE_WORDS) == set(SHAPES)
    for shape, words in SHAPE_WORDS.items():
        assert all(shape in w.split() for w in words), shape
    size_words = {w for words in SIZE_WORDS.values() for w in words}
    assert all(set(t.split()) & size_words and "{}" in t for t in ZEROSHOT_TEMPLATES)


def test_captions_of_a_crowded_scene_name_everything_within_30_words():
    objects = (
        SceneObject("triangle", "red", "small", (0, 0)),
        SceneObject("diamond", "blue", "large", (1, 1)),
        SceneObject("star", "yellow", "small", (0, 1)),
    )
    scene = Scene(objects, "brown", "striped")
    rng = np.random.default_rng(0)
    for _ in range(20):
        for caption in describe(scene, rng, 6):
            words = pre_caption(caption, max_words=100)
            assert len(words.split()) <= 30, caption
            assert _colour_words(caption) == {"red", "blue", "yellow", "brown"}
            for obj in objects:
                assert any(re.search(rf"\b{w}\b", words) for w in POSITION_WORDS[obj.cell])
                assert any(w in words for w in SHAPE_WORDS[obj.shape])


def test_readme_and_json_are_utf8_text(tiny_dataset):
    assert "seed 0" in (tiny_dataset / "README.txt").read_text(encoding="utf-8")
    rows = json.loads((tiny_dataset / "train.json").read_text(encoding="utf-8"))
    assert set(rows[0]) == {"image", "caption", "image_id", "paraphrases"}
