"""Pairs/s of a full training step with ResNet-50 + DistilBERT, next to the image tower alone.

One model (``trainables.model.BimodalModel`` placed with ``place_on_device``: channels-last,
TF32 and cuDNN autotuning on CUDA, optionally ``torch.compile``), AdamW (fused on CUDA) and
``MixedPrecision`` exactly as a trial builds them, on one random batch kept on the device:
B images (3, S, S), B token sequences of length 30 (lengths drawn in [8, 30]) and B distinct
dataset indices of a 100k-pair dataset. Steps timed, interleaved round-robin so that drifts in
the machine hit all alike (median of ``--repeats`` after ``--warmup``, synchronised):

- ``image_only``: the image tower's step alone: encode_image, the CLIP loss against fixed text
  embeddings, backward and an AdamW step over the image tower's parameters;
- ``clip``, ``sogclr``, ``isogclr``, ``amclr``: the full step: both towers, the loss (AmCLR
  also encodes an augmented view of each modality: the flipped images and the texts rolled by
  one token; the trial's view making itself is timed by benchmarks/trial_throughput.py), backward
  and the AdamW step over every parameter.

The data loader: the trial's own (``trainables.trial.train_loader`` over the image cache of
the built-in data, written at 32 px and cached at S px, ``--workers`` workers, pinned memory on
CUDA) followed by the copy to the device and the main view's train transform (``none`` and
``reference``, :mod:`trainables.train_transform`): pairs/s over ``--loader-batches`` batches
in a row after a warm-up epoch, each transform in turn (not interleaved: the workers prefetch).

Printed: ms and pairs/s per step and per loader batch, and the ratios full CLIP / image_only
(goal >= 0.9 on an H100/H200), AmCLR / CLIP (goal >= 0.7) and loader / CLIP step (goal >= 2,
for each transform).

Weights: ``--image-weights`` and ``--text`` (an HF id in the local cache or a directory) when
present; otherwise randomly initialised towers of the same architecture (torchvision
``resnet50``, ``DistilBertConfig()`` = distilbert-base-uncased's): nothing is downloaded, and
speed does not depend on the weights.

Full size (default on CUDA): B 256, 256 px, bf16. ``--small`` (default on CPU, for CI):
resnet18 at 32 px, a 2-layer DistilBERT of width 64, B 16, 1 + 3 rounds, loader without workers.
Usage: python benchmarks/gpu_step.py [--small | --full] [--precision bf16] [--compile]
       [--workers 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import median_seconds, synchronizer
from torch.utils.data import DataLoader

from trainables.config import DataPaths, TrialConfig
from trainables.distributed import DataParallel
from trainables.losses import build_loss
from trainables.model import BimodalModel, ModelConfig, ModelError, TextEncoder, place_on_device
from trainables.optim import build_optimizer, loss_parameter_groups
from trainables.precision import MixedPrecision
from trainables.synth import write_synthetic_dataset
from trainables.train_transform import TRAIN_TRANSFORMS, TrainTransform
from trainables.trial import EpochOrder, train_loader
from trainables.trial_data import load_trial_data

LOSSES = ("clip", "sogclr", "isogclr", "amclr")
NUM_SAMPLES = 100_000
TEXT_LENGTH = 30
GOALS = {("clip", "image_only"): 0.9, ("amclr", "clip"): 0.7}  # ratio of pairs/s, at least
LOADER_GOAL = 2.0  # loader pairs/s / full CLIP step pairs/s, at least


@dataclass(frozen=True)
class Size:
    image: str
    image_size: int
    batch: int
    text_layers: int  # of the random DistilBERT when no --text is found
    text_dim: int  # a multiple of 64 (heads of width 64)
    loader_batches: int  # per epoch of the loader's data set


FULL = Size("resnet50", 256, 256, 6, 768, 8)
SMALL = Size("resnet18", 32, 16, 2, 64, 4)


def random_distilbert(size: Size) -> tuple[torch.nn.Module, int]:
    from transformers import AutoModel, DistilBertConfig

    config = DistilBertConfig(
        n_layers=size.text_layers,
        dim=size.text_dim,
        n_heads=size.text_dim // 64,
        hidden_dim=4 * size.text_dim,
    )
    return AutoModel.from_config(config), size.text_dim


def build_model(size: Size, image_weights: str, text: str, embed_dim: int) -> BimodalModel:
    """The towers with the given weights ("" for ``text``: none), else randomly initialised
    (said on stdout)."""
    cfg = ModelConfig(embed_dim=embed_dim, image=size.image, image_weights=image_weights)
    model = BimodalModel(cfg, vocab_size=2, max_length=TEXT_LENGTH, pad_id=0)
    print(f"image tower: {size.image}, {'weights ' + image_weights if image_weights else 'random'}")
    try:
        if not text:
            raise ModelError("no text model asked for")
        pretrained = ModelConfig(embed_dim=embed_dim, text=text)
        model.text_encoder = BimodalModel(
            pretrained, vocab_size=2, max_length=2, pad_id=0
        ).text_encoder
        print(f"text tower: {text}")
    except ModelError as exc:
        model.text_encoder = TextEncoder(*random_distilbert(size), embed_dim)
        print(
            f"text tower: random DistilBERT ({size.text_layers} layers, dim {size.text_dim}): {exc}"
        )
    return model


def make_steps(
    model: BimodalModel, size: Size, precision: MixedPrecision, device: torch.device
) -> dict[str, Callable[[], None]]:
    """One closure per timed step, all on the same batch."""
    generator = torch.Generator().manual_seed(0)
    batch = size.batch
    images = torch.randn(batch, 3, size.image_size, size.image_size, generator=generator)
    vocab = model.text_encoder.bert.get_input_embeddings().num_embeddings
    ids = torch.randint(
        1000 if vocab > 2000 else 1, vocab, (batch, TEXT_LENGTH), generator=generator
    )
    lengths = torch.randint(8, TEXT_LENGTH + 1, (batch,), generator=generator)
    mask = (torch.arange(TEXT_LENGTH) < lengths[:, None]).long()
    index = torch.randperm(NUM_SAMPLES, generator=generator)[:batch]
    images, ids, mask, index = (t.to(device) for t in (images, ids, mask, index))
    images_aug, ids_aug = images.flip(-1), ids.roll(1, dims=1)
    fixed_text = F.normalize(
        torch.randn(batch, model.image_encoder.projection.out_features), dim=-1
    )
    fixed_text = fixed_text.to(device)

    def optimizer_for(named_parameters, loss_fn):
        return build_optimizer(
            "adamw",
            named_parameters,
            lr=2e-4,
            weight_decay=0.02,
            extra_groups=loss_parameter_groups(loss_fn, 2e-4),
        )

    clip_alone = build_loss("clip", num_samples=NUM_SAMPLES).to(device)
    image_optimizer = optimizer_for(model.image_encoder.named_parameters(), clip_alone)

    def image_only() -> None:
        with precision.autocast():
            image_emb = model.encode_image(images)
        output = clip_alone(image_emb, fixed_text, index, epoch=1)
        precision.step(output.loss, image_optimizer)

    steps = {"image_only": image_only}
    for name in LOSSES:
        loss_fn = build_loss(name, num_samples=NUM_SAMPLES).to(device)
        optimizer = optimizer_for(model.named_parameters(), loss_fn)

        def full(loss_fn=loss_fn, optimizer=optimizer) -> None:
            with precision.autocast():
                image_emb = model.encode_image(images)
                text_emb = model.encode_text(ids, mask)
                views = {}
                if loss_fn.needs_views:
                    views = {
                        "image_aug_emb": model.encode_image(images_aug),
                        "text_aug_emb": model.encode_text(ids_aug, mask),
                    }
            output = loss_fn(image_emb, text_emb, index, epoch=1, **views)
            precision.step(output.loss, optimizer)

        steps[name] = full
    return steps


def endless_batches(loader: DataLoader, order: EpochOrder) -> Iterator[tuple[int, int, dict]]:
    """(epoch, step, batch) of the loader's epochs, one after another."""
    for epoch in range(1 << 30):
        order.epoch = epoch
        for step, (batch, _) in enumerate(loader):
            yield epoch, step, batch


def loader_pairs_per_second(
    data_dir: Path, size: Size, workers: int, device: torch.device, batches: int
) -> dict[str, float]:
    """Pairs/s of the trial's loader over the cache of ``data_dir`` at the size's image size,
    the batch copied to ``device`` and transformed, per train transform: ``batches`` batches in
    a row (over epochs) after one untimed epoch."""
    sync = synchronizer(device)
    pairs = {}
    for name in TRAIN_TRANSFORMS:
        cfg = TrialConfig(
            data=DataPaths(str(data_dir), train_transform=name),
            image_size=size.image_size,
            batch_size=size.batch,
            num_workers=workers,
            device=device.type,
        )
        data = load_trial_data(cfg)
        order = EpochOrder(len(data.train), cfg.seed)
        loader = train_loader(cfg, data, order, DataParallel.current())
        transform = TrainTransform(name)
        batch_stream = endless_batches(loader, order)
        for _ in range(size.loader_batches):  # warm-up: workers started, caches paged in
            epoch, step, batch = next(batch_stream)
        sync()
        start = time.perf_counter()
        for _ in range(batches):
            epoch, step, batch = next(batch_stream)
            images = batch["image"].to(device, non_blocking=True)
            transform(images, seed=cfg.seed, epoch=epoch, step=step)
        sync()
        pairs[name] = batches * size.batch / (time.perf_counter() - start)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--small", action="store_true", help="tiny size (default on CPU)")
    scale.add_argument("--full", action="store_true", help="B 256, 256 px (default on CUDA)")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the towers")
    parser.add_argument("--image-weights", default="", help="state-dict file or weights name")
    parser.add_argument(
        "--text", help="HF id or directory (default: distilbert-base-uncased; --small: none)"
    )
    parser.add_argument("--embed-dim", type=int, default=256)
    parser.add_argument("--warmup", type=int, help="untimed rounds (default 3; --small 1)")
    parser.add_argument("--repeats", type=int, help="timed rounds (default 10; --small 3)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's)")
    parser.add_argument(
        "--workers", type=int, help="loader workers (default 7, seeds-gpu's; --small 0)"
    )
    parser.add_argument(
        "--loader-batches", type=int, help="timed loader batches (default 24; --small 8)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    small = args.small or (device.type == "cpu" and not args.full)
    size = SMALL if small else FULL
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device {name}, B {size.batch}, {size.image_size} px, {args.precision}")

    text = args.text if args.text is not None else ("" if small else "distilbert-base-uncased")
    model = build_model(size, args.image_weights, text, args.embed_dim)
    place_on_device(model, device, compile=args.compile)
    model.train()
    precision = MixedPrecision(args.precision, device)
    steps = make_steps(model, size, precision, device)
    warmup = args.warmup if args.warmup is not None else (1 if small else 3)
    repeats = args.repeats if args.repeats is not None else (3 if small else 10)
    seconds = median_seconds(steps, warmup, repeats, device)
    workers = args.workers if args.workers is not None else (0 if small else 7)
    batches = args.loader_batches or (8 if small else 24)
    with tempfile.TemporaryDirectory(prefix="clipstudy-gpu-step-") as tmp:
        data_dir = Path(tmp) / "data"
        n_train = size.loader_batches * size.batch
        write_synthetic_dataset(data_dir, n_train=n_train, n_retrieval=8, zeroshot_per_class=1)
        loader = loader_pairs_per_second(data_dir, size, workers, device, batches)

    pairs = {name: size.batch / s for name, s in seconds.items()}
    print(f"\n{'step':<12}{'ms':>10}{'pairs/s':>12}")
    for step_name, s in seconds.items():
        print(f"{step_name:<12}{1000 * s:>10.1f}{pairs[step_name]:>12.1f}")
    print()
    for (num, den), goal in GOALS.items():
        ratio = pairs[num] / pairs[den]
        verdict = ("PASS" if ratio >= goal else "FAIL") if device.type == "cuda" else "not judged"
        print(f"{num} / {den} pairs/s: {ratio:.2f} (goal >= {goal} on an H100/H200: {verdict})")
    print(f"\n{'loader':<12}{'ms':>10}{'pairs/s':>12}  ({workers} workers, {batches} batches)")
    for transform_name, rate in loader.items():
        print(f"{transform_name:<12}{1000 * size.batch / rate:>10.1f}{rate:>12.1f}")
    for transform_name, rate in loader.items():
        ratio = rate / pairs["clip"]
        goal = LOADER_GOAL
        verdict = ("PASS" if ratio >= goal else "FAIL") if device.type == "cuda" else "not judged"
        print(
            f"loader ({transform_name}) / clip step pairs/s: {ratio:.2f} "
            f"(goal >= {goal} on an H100/H200: {verdict})"
        )


if __name__ == "__main__":
    main()
