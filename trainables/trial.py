"""One trial: train a bimodal model with one loss and one optimizer, evaluate every epoch.

The trial knows nothing about Ray. It calls ``report(metrics, checkpoint_dir)`` after every
epoch, where ``checkpoint_dir`` holds a checkpoint of that epoch (valid only during the call)
when ``cfg.checkpoints_after`` that epoch and is None otherwise, and it resumes from
``resume_from`` when given (the epochs after that checkpoint run again, with the same
metrics). The same config and seed give the same metrics.
In a data-parallel trial (:mod:`trainables.distributed`) every rank runs this code on its share
of each global batch; rank 0 evaluates and writes the checkpoint, the other ranks report their
train metrics with ``checkpoint_dir = None``, and every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from trainables.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from trainables.config import TrialConfig
from trainables.data import collate_pairs
from trainables.distributed import DataParallel
from trainables.evaluation import evaluate
from trainables.losses import build_loss
from trainables.model import BimodalModel, place_on_device
from trainables.optim import build_optimizer, loss_parameter_groups
from trainables.precision import MixedPrecision
from trainables.schedule import warmup_cosine
from trainables.train_transform import TrainTransform
from trainables.trial_data import TrialData, load_trial_data
from trainables.views import ImageViews, text_views

EpochReporter = Callable[[dict[str, float], Path | None], None]


class TrialFailure(RuntimeError):
    """A trial cannot go on (for example too many unreadable images); the message says why."""


class EpochOrder(torch.utils.data.Sampler[int]):
    """A permutation of the dataset drawn from (seed, epoch) alone, so that a resumed trial
    and a trial of another cell with the same seed see the same data order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's random module."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def build_state(cfg: TrialConfig, data: TrialData) -> TrainingState:
    """Model, loss, optimizer and schedule of a fresh trial (initialisation fixed by the seed)."""
    seed_everything(cfg.seed)
    device = cfg.torch_device()
    model = BimodalModel(
        cfg.model,
        vocab_size=data.tokenizer.vocab_size,
        max_length=cfg.max_length,
        pad_id=data.tokenizer.pad_id,
    )
    place_on_device(model, device, compile=cfg.compile)
    loss_fn = build_loss(cfg.loss, num_samples=len(data.train), **cfg.loss_kwargs()).to(device)
    loss_fn.local_loss = cfg.loss_form == "local"
    optimizer = build_optimizer(
        cfg.optimizer,
        model.named_parameters(),
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        knobs=cfg.optimizer_params,
        extra_groups=loss_parameter_groups(loss_fn, cfg.lr),
    )
    steps_per_epoch = len(data.train) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    scheduler = warmup_cosine(
        optimizer,
        warmup_steps=round(cfg.warmup_fraction * total),
        total_steps=total,
        min_ratio=cfg.min_lr_ratio,
    )
    return TrainingState(
        model, loss_fn, optimizer, scheduler, MixedPrecision(cfg.precision, device)
    )


class ViewMaker:
    """The augmented views x' and t' of a batch, made only for losses with ``needs_views``."""

    def __init__(self, cfg: TrialConfig, data: TrialData, parallel: DataParallel) -> None:
        self.cfg, self.data, self.parallel = cfg, data, parallel
        self.images = ImageViews(cfg.image_size, cfg.view_mode)
        self.seconds = 0.0

    def embed(self, model: BimodalModel, batch: dict, epoch: int, step: int) -> dict:
        """``{"image_aug_emb": (B, d), "text_aug_emb": (B, d)}`` for the loss: the views this
        rank's rows get in the global batch."""
        start = time.perf_counter()
        where = {"seed": self.cfg.seed, "epoch": epoch, "step": step}
        global_index = self.parallel.gather(batch["index"]).tolist()
        rows = self.parallel.rows(len(batch["index"]))
        images = self.images(batch["image"], **where, rows=rows, batch_size=len(global_index))
        texts = text_views(self.data.train.records, global_index, **where)[rows]
        ids, mask = self.data.tokenizer(texts)
        self.seconds += time.perf_counter() - start
        device = self.cfg.torch_device()
        return {
            "image_aug_emb": model.encode_image(images.to(device, non_blocking=True)),
            "text_aug_emb": model.encode_text(ids.to(device), mask.to(device)),
        }


def _train_one_epoch(
    cfg: TrialConfig,
    data: TrialData,
    state: TrainingState,
    loader: DataLoader,
    epoch: int,
    parallel: DataParallel,
) -> dict[str, float]:
    """One pass over the train pairs (this rank's share of each global batch); returns
    train_loss (the mean over ranks) and timing figures."""
    device = cfg.torch_device()
    views = ViewMaker(cfg, data, parallel) if state.loss_fn.needs_views else None
    transform = TrainTransform(cfg.data.train_transform)
    parameters = [*state.model.parameters(), *state.loss_fn.parameters()]
    state.model.train()
    objective_sum = torch.zeros((), device=device)
    batches = seen = skipped = 0
    data_time = step_time = 0.0
    tick = time.perf_counter()
    for step, (batch, n_skipped) in enumerate(loader):
        skipped += n_skipped
        seen += n_skipped + (0 if batch is None else len(batch["index"]))
        # a data-parallel step needs every rank's whole share (the gather takes equal shapes)
        whole = n_skipped == 0 or parallel.world_size == 1
        if not parallel.all_true(batch is not None and len(batch["index"]) >= 2 and whole):
            continue
        ids, mask = batch["ids"], batch["mask"]  # the captions, tokenized once per trial
        start = time.perf_counter()
        data_time += start - tick
        batch["image"] = batch["image"].to(device, non_blocking=True)  # uint8 (B, 3, S, S)
        where = {"seed": cfg.seed, "epoch": epoch, "step": step}
        rows = parallel.rows(len(batch["index"]))
        pixels = transform(batch["image"], **where, rows=rows, batch_size=cfg.batch_size)
        with state.precision.autocast():
            image_emb = state.model.encode_image(pixels)
            text_emb = state.model.encode_text(ids.to(device), mask.to(device))
            augmented = views.embed(state.model, batch, epoch, step) if views else {}
        index = batch["index"].to(device)
        output = state.loss_fn(image_emb, text_emb, index, epoch=epoch, **augmented)
        state.precision.step(
            output.loss, state.optimizer, lambda: parallel.average_gradients(parameters)
        )
        state.scheduler.step()
        objective_sum += output.objective
        batches += 1
        tick = time.perf_counter()
        step_time += tick - start
    if seen and skipped / seen > cfg.max_bad_image_fraction:
        raise TrialFailure(
            f"{skipped} of {seen} train images were unreadable in epoch {epoch + 1} "
            f"({100 * skipped / seen:.1f}% > trial.max_bad_image_fraction "
            f"{100 * cfg.max_bad_image_fraction:g}%); repair the images or raise the limit"
        )
    if batches == 0:
        raise TrialFailure(
            f"epoch {epoch + 1} made no optimizer step: {len(data.train)} train pairs "
            f"({skipped} unreadable) give no full batch of trial.batch_size {cfg.batch_size} "
            "(incomplete batches are dropped); lower trial.batch_size or add train data"
        )
    train_loss = (parallel.mean(objective_sum) / batches).item()
    if not np.isfinite(train_loss):
        raise TrialFailure(
            f"train loss became {train_loss} in epoch {epoch + 1} "
            f"(loss {cfg.loss}, optimizer {cfg.optimizer}, lr {cfg.lr:g}); lower the learning rate"
        )
    return {
        "train_loss": train_loss,
        "skipped_images": float(skipped),
        "time_data_s": data_time,
        "time_step_s": step_time,
        "time_views_s": views.seconds if views else 0.0,  # part of time_step_s
    }


def train_loader(
    cfg: TrialConfig, data: TrialData, order: EpochOrder, parallel: DataParallel
) -> DataLoader:
    """This rank's share of every global batch of ``order`` (incomplete batches dropped), with
    ``cfg.num_workers`` persistent workers and pinned memory on a GPU."""
    return DataLoader(
        data.train,
        batch_size=parallel.local_batch(cfg.batch_size),
        sampler=parallel.sampler(order, cfg.batch_size, len(data.train)),
        drop_last=True,
        collate_fn=collate_pairs,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
        pin_memory=cfg.torch_device().type == "cuda",
    )


def run_trial(cfg: TrialConfig, report: EpochReporter, resume_from: Path | None = None) -> None:
    """Train for ``cfg.epochs`` epochs, calling ``report`` after each one.

    Metrics per epoch: ``epoch`` (1-based count of completed epochs), ``train_loss``, the
    retrieval and zero-shot metrics of :func:`trainables.evaluation.evaluate`, and timings.
    """
    data = load_trial_data(cfg)
    parallel = DataParallel.current()
    state = build_state(cfg, data)
    parallel.prepare(state.model, state.loss_fn)
    first_epoch = load_checkpoint(resume_from, state, cfg.torch_device()) if resume_from else 0
    order = EpochOrder(len(data.train), cfg.seed)
    loader = train_loader(cfg, data, order, parallel)
    for epoch in range(first_epoch, cfg.epochs):
        order.epoch = epoch
        metrics = _train_one_epoch(cfg, data, state, loader, epoch, parallel)
        metrics["epoch"] = epoch + 1
        if not parallel.is_main:
            report(metrics, None)
            continue
        start = time.perf_counter()
        metrics.update(evaluate(state.model, data, cfg.eval_batch_size, state.precision))
        metrics["time_eval_s"] = time.perf_counter() - start
        if not cfg.checkpoints_after(epoch + 1):
            report(metrics, None)
            continue
        with tempfile.TemporaryDirectory(prefix="clipstudy-ckpt-") as tmp:
            report(metrics, save_checkpoint(Path(tmp), state, epoch + 1))
