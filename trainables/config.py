"""The configuration of one trial: where the data is, the model, the loss, the optimizer.

A sweep builds one base :class:`TrialConfig` from the study file and lets each trial override
the searched fields with :meth:`TrialConfig.with_params` (a flat dict as Ray Tune passes it).
A searched key names a field of :class:`TrialConfig` (``lr``), a knob of the trial's optimizer
with the prefix ``optimizer_`` (``optimizer_beta2`` -> ``optimizer_params["beta2"]``; the
knobs are declared in :data:`trainables.optim.OPTIMIZERS`), or else a parameter of its loss
(``temperature`` -> ``loss_params["temperature"]``). No loss parameter starts with the prefix,
so the two kinds cannot collide (an AdamW ``eps`` is ``optimizer_eps``, SogCLR's is ``eps``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainables.losses import LOSS_NAMES, loss_defaults
from trainables.model_config import ModelConfig
from trainables.optim import check_optimizer_params
from trainables.precision import PRECISIONS
from trainables.train_transform import check_train_transform
from trainables.views import VIEW_MODES

OPTIMIZER_PREFIX = "optimizer_"  # a searched key optimizer_<knob> sets optimizer_params[<knob>]


TRAIN_FORMATS = ("json", "csv", "webdataset")


@dataclass(frozen=True)
class DataPaths:
    """The three datasets of a trial, in the formats of reference/losses.md §10.

    Relative paths are taken relative to ``dir``. Train pairs come in ``train_format``:
    ``"json"``, a CC3M-style ``train_json`` with images under ``train_images``; ``"csv"``, an
    open_clip-style ``train_csv`` (columns ``csv_img_key`` and ``csv_caption_key``, separated
    by ``csv_separator``; image paths relative to ``train_images``); ``"webdataset"``,
    img2dataset shards ``train_shards`` (a brace pattern such as
    ``"shards/{00000..00009}.tar"``). Evaluation: a COCO-Karpathy-style retrieval JSON and its
    image root, an ImageFolder zero-shot tree and its class-name/template file. Decoded images
    are cached under ``cache_dir`` (:mod:`trainables.image_cache`). ``train_transform`` is
    the train-time transform of the main image view (:mod:`trainables.train_transform`):
    ``"none"`` (CLIP normalisation only) or ``"reference"`` (the reference augmentations).
    """

    dir: str
    train_format: str = "json"
    train_json: str = "train.json"
    train_csv: str = "train.csv"
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    csv_separator: str = "\t"
    train_shards: str = ""
    train_images: str = "."
    retrieval_json: str = "retrieval.json"
    retrieval_images: str = "."
    zeroshot_dir: str = "zeroshot/val"
    zeroshot_classes: str = "zeroshot/classes.json"
    cache_dir: str = ".clipstudy-cache"
    train_transform: str = "none"

    def __post_init__(self) -> None:
        check_train_transform(self.train_transform)
        if self.train_format not in TRAIN_FORMATS:
            raise ValueError(
                f"data.train_format must be one of {', '.join(TRAIN_FORMATS)}, "
                f"got {self.train_format!r}"
            )
        if self.train_format == "webdataset" and not self.train_shards:
            raise ValueError(
                'data.train_format = "webdataset" needs data.train_shards, a shard pattern '
                'such as "shards/{00000..00009}.tar"'
            )
        if len(self.csv_separator) != 1:
            raise ValueError(
                f"data.csv_separator must be one character, got {self.csv_separator!r}"
            )
        if self.train_format == "csv" and self.csv_img_key == self.csv_caption_key:
            raise ValueError("data.csv_img_key and data.csv_caption_key must name two columns")

    def path(self, name: str) -> Path:
        """The absolute path of field ``name`` (for example ``"train_json"``)."""
        return (Path(self.dir) / getattr(self, name)).resolve()


@dataclass(frozen=True)
class TrialConfig:
    """Everything one training run needs; validated on construction."""

    data: DataPaths
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: str = "clip"
    loss_params: Mapping[str, float] = field(default_factory=dict)
    optimizer: str = "adamw"
    optimizer_params: Mapping[str, float | bool] = field(default_factory=dict)  # its knobs
    lr: float = 1e-3
    weight_decay: float = 0.02
    epochs: int = 4
    batch_size: int = 64
    warmup_fraction: float = 0.1
    min_lr_ratio: float = 0.01
    image_size: int = 32
    max_length: int = 32
    seed: int = 0
    max_bad_image_fraction: float = 0.01
    num_workers: int = 0  # DataLoader workers; a study sets cpus_per_trial - 1 unless given
    eval_batch_size: int = 256
    device: str = "auto"  # "auto" = cuda when Ray (or the machine) gives this trial a GPU
    view_mode: str = "batch"  # augmented image views: one operation per "batch" or "sample"
    precision: str = "fp32"  # towers under autocast: "fp32" (off), "bf16" or "fp16"
    compile: bool = False  # torch.compile the towers (worth it on a GPU, for long trials)
    loss_form: str = "full"  # data-parallel: every rank the "full" matrix, or its "local" rows
    # the epochs that end with a checkpoint, and always the last; () = every epoch (a sweep
    # passes its ASHA rungs: a trial can only be stopped there)
    checkpoint_epochs: tuple[int, ...] = ()
    # the image cache directory the sweep's driver prepared; "" (or not on this machine): the
    # trial finds, or builds, the cache of ``data`` itself (trainables.trial_data)
    image_cache: str = ""

    def __post_init__(self) -> None:
        epochs = tuple(self.checkpoint_epochs)  # from_dict and a TOML table give a list
        object.__setattr__(self, "checkpoint_epochs", epochs)
        counts = all(isinstance(e, int) and e >= 1 for e in epochs)
        if not counts or list(epochs) != sorted(set(epochs)):
            raise ValueError(
                f"trial.checkpoint_epochs must be increasing epoch counts >= 1, got {epochs!r}"
            )
        if self.view_mode not in VIEW_MODES:
            raise ValueError(
                f"trial.view_mode must be one of {', '.join(VIEW_MODES)}, got {self.view_mode!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"trial.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if self.loss_form not in ("full", "local"):
            raise ValueError(f"trial.loss_form must be full or local, got {self.loss_form!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"trial.device must be auto, cpu or cuda, got {self.device!r}")
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSS_NAMES)}")
        check_optimizer_params(self.optimizer, self.optimizer_params)
        unknown = sorted(set(self.loss_params) - set(loss_defaults(self.loss)))
        if unknown:
            raise ValueError(
                f"loss {self.loss!r} has no parameter {unknown[0]!r}; "
                f"its parameters are {', '.join(loss_defaults(self.loss)) or 'none'}"
            )
        positive = ("lr", "epochs", "batch_size", "image_size", "max_length", "eval_batch_size")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"trial.{name} must be > 0, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ValueError("trial.batch_size must be >= 2: contrastive losses need negatives")
        for name in ("warmup_fraction", "min_lr_ratio", "max_bad_image_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"trial.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.weight_decay < 0 or self.num_workers < 0:
            raise ValueError("trial.weight_decay and num_workers must be >= 0")

    def loss_kwargs(self) -> dict[str, Any]:
        """Hyperparameters for ``build_loss``: ``loss_params`` plus, for a loss with a network
        on the embeddings (the TempGenerator), the model's ``embed_dim``."""
        kwargs = dict(self.loss_params)
        if "embed_dim" in loss_defaults(self.loss):
            kwargs.setdefault("embed_dim", self.model.embed_dim)
        return kwargs

    def checkpoints_after(self, epochs_done: int) -> bool:
        """Whether the trial writes a checkpoint after ``epochs_done`` completed epochs."""
        return (
            not self.checkpoint_epochs
            or epochs_done in self.checkpoint_epochs
            or epochs_done == self.epochs
        )

    def torch_device(self) -> torch.device:
        """The device to train on: ``device``, with auto = cuda if one is visible."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def with_params(self, params: Mapping[str, Any]) -> TrialConfig:
        """A copy with searched parameters applied.

        ``cell`` ("loss:optimizer", the pair a search space drew, which it also passes as
        ``loss`` and ``optimizer``) is skipped; a key ``optimizer_<knob>`` is a knob of the
        (possibly new) optimizer and goes into ``optimizer_params``; other keys naming a field
        of this class replace it; any other key is a parameter of the (possibly new) loss and
        goes into ``loss_params``. Both dicts are replaced, not merged (the loss and optimizer
        may change with the parameters).
        """
        fields = {f.name for f in dataclasses.fields(self)} - {"data", "model", "loss_params"}
        direct, loss_params, optimizer_params = {}, {}, {}
        for key, value in params.items():
            if key.startswith(OPTIMIZER_PREFIX):
                optimizer_params[key.removeprefix(OPTIMIZER_PREFIX)] = value
            elif key in fields:
                direct[key] = value
            elif key != "cell":
                loss_params[key] = value
        return dataclasses.replace(
            self, **direct, loss_params=loss_params, optimizer_params=optimizer_params
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable view (nested dicts)."""
        out = dataclasses.asdict(self)
        out["loss_params"] = dict(self.loss_params)
        out["optimizer_params"] = dict(self.optimizer_params)
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrialConfig:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        values["data"] = DataPaths(**values["data"])
        values["model"] = ModelConfig(**values["model"])
        return cls(**values)
