"""Data-parallel scaling: trial throughput for W workers, and the gather and global loss at
large global batches, full-matrix vs local-loss form.

1. Throughput: the demo trial (``--loss``, the demo study's model and global batch) for
   ``--epochs`` epochs on W = 1 and W = 2 processes (``torch.multiprocessing``, gloo on the CPU,
   NCCL when every rank has a GPU), ``--threads`` threads shared out over the ranks; training
   pairs per second of rank 0 (data + step time; evaluation is left out).
2. The loss at B_global = 1024 ... 32768 pairs (d = ``--dim``) on W = 1 and 2 ranks of
   B_local = B_global / W rows each: per rank, the time of the gather (all-gather of image and
   text embeddings, forward and backward) and of forward + backward of ``--loss-names`` (every
   loss by default; ``amclr``/``xamclr`` with augmented views of their own) in the full-matrix
   form (every rank the whole B_global x B_global matrix) and the local-loss form
   (its B_local x B_global rows). Each time is the median of ``--repeats`` calls, the slowest
   rank's. ``ns/entry`` divides the local form's time by B_local x B_global and the full form's
   by B_global^2: the local form's cost per rank grows no faster than B_local x B_global when its
   ns/entry stays flat (PASS: the largest is at most 2x the smallest over the sizes measured,
   the smallest size left out as call overhead dominates it). On a busy machine the load
   drifts between sizes; the local form's time over the full form's at the same size, W = 2
   (measured back to back), should then be near B_local / B_global = 1/2. Sizes whose
   similarity matrices would exceed ``--max-matrix-mib`` per rank are skipped and counted.

Run it on an otherwise idle machine; on 2 shared cores W = 2 cannot be faster than W = 1, and
a W = 1 rank with 2 threads on busy cores stalls in OpenMP (30 pairs/s against 1286 with
``--threads 1`` in one of our runs): compare there at ``--threads 1``.
Usage: python benchmarks/ddp_scaling.py [--threads 2] [--max-matrix-mib 1024] [--skip-trial]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from _demo import demo_trial_config, synthesise

from trainables.data import read_train_annotations
from trainables.losses import LOSS_NAMES, build_loss, loss_defaults
from trainables.losses.gather import AllGather
from trainables.trial import run_trial

SIZES = [1024, 2048, 4096, 8192, 16384, 32768]
WORLDS = [1, 2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _init(rank: int, world: int, port: int, threads: int) -> torch.device:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = torch.cuda.device_count() >= world
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    torch.set_num_threads(max(1, threads // world))
    if cuda:
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank)
    return torch.device("cpu")


def _trial_rank(rank: int, world: int, port: int, args, data: str, out: dict) -> None:
    device = _init(rank, world, port, args.threads)
    try:
        params = {"loss": args.loss, "optimizer": "adamw", "lr": 3e-3}
        cfg = demo_trial_config(Path(data), params, epochs=args.epochs)
        cfg = cfg.__class__(**(cfg.__dict__ | {"device": device.type}))
        epochs: list[dict] = []
        run_trial(cfg, lambda metrics, _: epochs.append(metrics))
        if rank == 0:
            out[world] = (epochs, cfg.batch_size)
    finally:
        dist.destroy_process_group()


def _median_ms(call, repeats: int, device: torch.device) -> float:
    """The slowest rank's median time of ``call`` in ms (one warm-up call)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    times = []
    for round_ in range(repeats + 1):
        dist.barrier()
        sync()
        start = time.perf_counter()
        call()
        sync()
        if round_:
            times.append(time.perf_counter() - start)
    slowest = torch.tensor([statistics.median(times)], device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return 1e3 * slowest.item()


def _matrix_mib(rows: int, columns: int, views: bool) -> float:
    """Memory of the similarity matrices of one loss call: S_I and S_T and as much again for
    their softmax or weights, float32; four times that for the (2R, 2N) products of the losses
    with augmented views."""
    return (16 if views else 4) * 4 * rows * columns / 2**20


def _time_size(rank: int, world: int, size: int, args, device) -> dict[str, float | None]:
    """This size's timings: the gather, then each loss and form (None: skipped)."""
    local = size // world
    generator = torch.Generator().manual_seed(rank)
    image, text, image_aug, text_aug = (
        F.normalize(torch.randn(local, args.dim, generator=generator), dim=1)
        .to(device)
        .requires_grad_()
        for _ in range(4)
    )
    index = torch.arange(rank * local, (rank + 1) * local, device=device)
    gather = AllGather()

    def gather_call() -> None:
        (gather(image).sum() + gather(text).sum()).backward()

    timings: dict[str, float | None] = {"gather": _median_ms(gather_call, args.repeats, device)}
    views = {"image_aug_emb": image_aug, "text_aug_emb": text_aug}
    for name in args.loss_names:
        for form in ("full", "local"):
            anchors = local if form == "local" else size
            hparams = {"embed_dim": args.dim} if "embed_dim" in loss_defaults(name) else {}
            loss_fn = build_loss(name, num_samples=size, **hparams).to(device)
            if _matrix_mib(anchors, size, loss_fn.needs_views) > args.max_matrix_mib:
                timings[f"{name} {form}"] = None
                continue
            loss_fn.gather, loss_fn.local_loss = gather, form == "local"

            def loss_call(loss_fn=loss_fn) -> None:
                extra = views if loss_fn.needs_views else {}
                loss_fn(image, text, index, epoch=1, **extra).loss.backward()

            timings[f"{name} {form}"] = _median_ms(loss_call, args.repeats, device)
    return timings


def _loss_rank(rank: int, world: int, port: int, args, out: dict) -> None:
    device = _init(rank, world, port, args.threads)
    try:
        rows = {size: _time_size(rank, world, size, args, device) for size in args.sizes}
        if rank == 0:
            out[world] = rows
    finally:
        dist.destroy_process_group()


def _spawn(target, world: int, *args) -> dict:
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(target, args=(world, _free_port(), *args, out), nprocs=world, join=True)
        return dict(out)


def throughput(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = synthesise(Path(tmp) / "synth")
        n_train = len(read_train_annotations(data / "train.json"))
        results = {}
        for world in WORLDS:
            results |= _spawn(_trial_rank, world, args, str(data))
    print(f"1. demo trial ({args.loss} + adamw), {args.epochs} epochs, {args.threads} threads")
    print("   W  global batch  pairs/s  (data + step s)  train_loss per epoch")
    rates = {}
    for world, (epochs, batch) in sorted(results.items()):
        seconds = sum(m["time_data_s"] + m["time_step_s"] for m in epochs)
        rates[world] = len(epochs) * (n_train // batch) * batch / seconds
        losses = " ".join(f"{m['train_loss']:.5f}" for m in epochs)
        print(f"   {world}  {batch:12d}  {rates[world]:7.1f}  ({seconds:13.2f})  {losses}")
    print(f"   W=2 / W=1 throughput: {rates[2] / rates[1]:.2f}x")


def loss_scaling(args) -> None:
    results = {world: _spawn(_loss_rank, world, args)[world] for world in WORLDS}
    print(f"\n2. per rank, d = {args.dim}, {args.threads} threads: ms (ns per matrix entry)")
    print("   loss             B_global  W   gather                full               local")
    skipped = 0
    verdicts = []
    for name in args.loss_names:
        local_ns: list[float] = []  # W = WORLDS[-1], the smallest size left out
        local_share: list[float] = []  # local / full time at W = WORLDS[-1], the same sizes
        for size in args.sizes:
            for world in WORLDS:
                timings = results[world][size]
                cells = []
                for form, entries in (("full", size * size), ("local", size // world * size)):
                    ms = timings[f"{name} {form}"]
                    if ms is None:
                        skipped += 1
                        cells.append(f"{'skipped':>18s}")
                        continue
                    ns = 1e6 * ms / entries
                    cells.append(f"{ms:9.1f} ({ns:6.2f})")
                    if form == "local" and world == WORLDS[-1] and size != args.sizes[0]:
                        local_ns.append(ns)
                        full_ms = timings[f"{name} full"]
                        if full_ms is not None:
                            local_share.append(ms / full_ms)
                print(
                    f"   {name:15s}  {size:8d}  {world}  {timings['gather']:7.1f}  "
                    + "  ".join(cells)
                )
        if len(local_ns) >= 2:
            ratio = max(local_ns) / min(local_ns)
            verdict = "PASS" if ratio <= 2 else "FAIL"
            verdicts.append(
                f"   {name} local, W={WORLDS[-1]}: ns per B_local x B_global entry "
                f"{min(local_ns):.2f} .. {max(local_ns):.2f} ({ratio:.2f}x) {verdict}"
            )
        if local_share:
            verdicts.append(
                f"   {name} local / full time per rank, W={WORLDS[-1]}: "
                f"{min(local_share):.2f} .. {max(local_share):.2f} (B_local / B_global = "
                f"{1 / WORLDS[-1]:.2f}; measured back to back, so robust to a busy machine)"
            )
    if skipped:
        print(f"   skipped (matrices over --max-matrix-mib {args.max_matrix_mib:g}): {skipped}")
    print("\n".join(verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loss", default="clip", help="the loss of the throughput trial")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--loss-names", nargs="+", default=list(LOSS_NAMES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-matrix-mib", type=float, default=1024)
    parser.add_argument("--skip-trial", action="store_true")
    args = parser.parse_args()
    if not args.skip_trial:
        throughput(args)
    loss_scaling(args)


if __name__ == "__main__":
    main()
