"""Train formats (JSON, open_clip CSV, img2dataset WebDataset) and the image cache: the same
batches from every format, a cache bit-identical to direct decoding, reuse by fingerprint."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from trainables.config import TRAIN_FORMATS, DataPaths, TrialConfig
from trainables.data import CLIP_MEAN, CLIP_STD, DataError, collate_pairs, normalise
from trainables.image_cache import ImageCache, load_image_cache, prepare_image_cache
from trainables.model_config import ModelConfig
from trainables.synth import write_synthetic_dataset
from trainables.tokenizer import CaptionTokenizer
from trainables.train_sources import read_train_csv
from trainables.trial import EpochOrder, run_trial
from trainables.trial_data import load_trial_data

TINY_MODEL = ModelConfig(embed_dim=16, image_width=4, text_width=16, text_layers=1, text_heads=2)
N_TRAIN = 40


@pytest.fixture(scope="module")
def every_format(tmp_path_factory) -> tuple[Path, str]:
    """A small built-in dataset with train.json, train.csv and shards (16 samples a shard)."""
    root = tmp_path_factory.mktemp("formats") / "data"
    summary = write_synthetic_dataset(
        root,
        n_train=N_TRAIN,
        n_retrieval=8,
        zeroshot_per_class=1,
        formats=TRAIN_FORMATS,
        shard_size=16,
    )
    return root, str(summary["train_shards"])


def paths(root: Path, shards: str, fmt: str, **more) -> DataPaths:
    return DataPaths(str(root), train_format=fmt, train_shards=shards, **more)


def config(data: DataPaths, **more) -> TrialConfig:
    values = {"model": TINY_MODEL, "epochs": 1, "batch_size": 8, "eval_batch_size": 64}
    return TrialConfig(data=data, **(values | more))


def _built_cache(data: DataPaths, image_size: int) -> ImageCache:
    """The image cache of ``data``, built as the sweep's driver builds it."""
    return load_image_cache(prepare_image_cache(data, image_size)[0])


def batches(cfg: TrialConfig) -> list[dict]:
    """The train batches of epoch 0 as the trial's DataLoader makes them."""
    data = load_trial_data(cfg)
    loader = DataLoader(
        data.train,
        batch_size=cfg.batch_size,
        sampler=EpochOrder(len(data.train), cfg.seed),
        drop_last=True,
        collate_fn=collate_pairs,
    )
    return [batch for batch, _ in loader]


def test_shards_hold_what_img2dataset_writes(every_format):
    root, shards = every_format
    assert shards == "shards/{00000..00002}.tar"
    with tarfile.open(root / "shards" / "00000.tar") as tar:
        names = tar.getnames()[:3]
    assert names == ["000000000.json", "000000000.png", "000000000.txt"]
    assert json.loads((root / "shards" / "00002_stats.json").read_text())["successes"] == 8


def test_every_format_gives_the_same_batches(every_format):
    root, shards = every_format
    reference = batches(config(paths(root, shards, "json")))
    assert len(reference) == N_TRAIN // 8
    for fmt in ("csv", "webdataset"):
        other = batches(config(paths(root, shards, fmt)))
        assert len(other) == len(reference)
        for a, b in zip(reference, other, strict=True):
            assert torch.equal(a["image"], b["image"])
            assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["mask"], b["mask"])
            assert torch.equal(a["index"], b["index"])
            assert torch.equal(a["image_index"], b["image_index"])


def test_a_trial_gives_the_same_metrics_from_every_format(every_format):
    root, shards = every_format
    metrics = {}
    for fmt in ("json", "csv", "webdataset"):
        reported: list[dict] = []
        run_trial(config(paths(root, shards, fmt)), lambda m, _, out=reported: out.append(m))
        metrics[fmt] = {k: v for k, v in reported[-1].items() if not k.startswith("time_")}
    assert metrics["json"] == metrics["csv"] == metrics["webdataset"]


def _reference_image(path: Path, size: int) -> torch.Tensor:
    """Direct decoding as trainables.data.load_image did before the cache: PIL -> float32 / 255
    in numpy -> CLIP normalisation in torch."""
    with Image.open(path) as image:
        rgb = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    pixels = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (pixels - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)


@pytest.mark.parametrize("size", [32, 20])
def test_cached_images_equal_direct_decoding_exactly(every_format, size):
    root, shards = every_format
    data = load_trial_data(config(paths(root, shards, "webdataset"), image_size=size))
    rows = json.loads((root / "train.json").read_text())
    for i in (0, 17, N_TRAIN - 1):
        cached = normalise(data.train[i]["image"][0])
        assert torch.equal(cached, _reference_image(root / rows[i]["image"], size))
    retrieval = json.loads((root / "retrieval.json").read_text())
    assert torch.equal(
        data.retrieval_images[3]["image"], _reference_image(root / retrieval[3]["image"], size)
    )
    first_class = sorted((root / "zeroshot" / "val" / "c000").iterdir())[0]
    assert torch.equal(data.zeroshot_images[0]["image"], _reference_image(first_class, size))


def test_the_cache_is_built_once_and_rebuilt_when_a_source_changes(tmp_path):
    root = tmp_path / "data"
    write_synthetic_dataset(root, n_train=16, n_retrieval=4, zeroshot_per_class=1)
    data = DataPaths(str(root), cache_dir=str(tmp_path / "cache"))
    first, built = prepare_image_cache(data, 32)
    assert built and first.parent == tmp_path / "cache"
    assert prepare_image_cache(data, 32) == (first, False)
    assert prepare_image_cache(data, 24)[0] != first  # another image size, another cache
    image = root / "images" / "train" / "000003.png"
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second, built = prepare_image_cache(data, 32)
    assert built and second != first


def test_the_cached_vocabulary_gives_the_tokenizer_of_every_text(tiny_dataset):
    cache = _built_cache(DataPaths(str(tiny_dataset)), 32)
    spec = cache.zeroshot
    texts = [
        *(t for r in cache.train_records for t in (r.caption, *r.paraphrases)),
        *(c for r in cache.retrieval_records for c in r.captions),
        *(t.format(c) for c in spec.classes for t in spec.templates),
    ]
    direct = CaptionTokenizer.from_texts(texts, max_length=32)
    cached = CaptionTokenizer.from_texts(cache.vocabulary, max_length=32)
    assert cached.to_json() == direct.to_json()


def test_a_shard_sample_without_image_is_an_unreadable_pair(tmp_path):
    shard = tmp_path / "one.tar"
    with tarfile.open(shard, "w") as tar:
        for key, suffix, payload in [("a", "txt", b"no image here"), ("b", "txt", b"nor here")]:
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    write_synthetic_dataset(tmp_path / "d", n_train=4, n_retrieval=4, zeroshot_per_class=1)
    cache = _built_cache(DataPaths(str(tmp_path / "d"), "webdataset", train_shards=str(shard)), 32)
    assert [r.caption for r in cache.train_records] == ["no image here", "nor here"]
    assert cache.train_readable.tolist() == [False, False]


def test_csv_errors_name_the_column_and_the_fix(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("path,caption\na.png,a cat\n")
    with pytest.raises(DataError, match=r"no column 'filepath' \(columns: path,caption; set data"):
        read_train_csv(path, "filepath", "title", "\t")
    records = read_train_csv(path, "path", "caption", ",")
    assert [(r.image, r.caption, r.image_id) for r in records] == [("a.png", "a cat", "a.png")]


def test_missing_shards_are_named(tmp_path):
    write_synthetic_dataset(tmp_path / "d", n_train=4, n_retrieval=4, zeroshot_per_class=1)
    data = DataPaths(str(tmp_path / "d"), "webdataset", train_shards="shards/{000..002}.tar")
    with pytest.raises(DataError, match=r"3 of 3 shards are missing, first .*000.tar"):
        _built_cache(data, 32)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"train_format": "parquet"}, "data.train_format must be one of json, csv, webdataset"),
        ({"train_format": "webdataset"}, "needs data.train_shards"),
        ({"csv_separator": ", "}, "data.csv_separator must be one character"),
    ],
)
def test_bad_data_fields_are_rejected(fields, message):
    with pytest.raises(ValueError, match=message):
        DataPaths("d", **fields)


@pytest.mark.parametrize(("cpus", "workers"), [(1, 0), (0.5, 0), (3, 2)])
def test_a_study_gives_each_trial_cpus_per_trial_minus_one_loader_workers(tmp_path, cpus, workers):
    from study.config import load_config

    study = tmp_path / "study.toml"
    study.write_text(
        f'[study]\nname = "w"\nspace = "demo"\n[resources]\ncpus_per_trial = {cpus}\n'
        f'[data]\ndir = "{tmp_path}"\n'
    )
    assert load_config(study).trial.num_workers == workers
    assert load_config(study, ["trial.num_workers=1"]).trial.num_workers == 1


def test_loader_workers_give_the_same_batches(every_format):
    root, shards = every_format
    cfg = config(paths(root, shards, "webdataset"))
    data = load_trial_data(cfg)
    loaders = [
        DataLoader(
            data.train,
            batch_size=8,
            sampler=EpochOrder(len(data.train), 0),
            drop_last=True,
            collate_fn=collate_pairs,
            num_workers=workers,
        )
        for workers in (0, 2)
    ]
    serial, parallel = ([batch for batch, _ in loader] for loader in loaders)
    assert all(torch.equal(a["image"], b["image"]) for a, b in zip(serial, parallel, strict=True))


def test_clipstudy_data_synth_writes_the_chosen_formats(tmp_path, capsys):
    from study.cli import main

    argv = ["data", "synth", str(tmp_path / "d"), "--n-train", "8", "--n-retrieval", "4"]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--zeroshot-per-class", "1", "--format", "webdataset"])
    assert exit_info.value.code == 0
    assert "'train_shards': 'shards/{00000..00000}.tar'" in capsys.readouterr().out
    assert (tmp_path / "d" / "train.json").is_file() and not (tmp_path / "d" / "train.csv").exists()
