"""Forward + backward time of every registered loss, as a ratio to CLIP measured in the same run.

For each batch size, every loss of ``LOSS_NAMES`` is built with its defaults (``embed_dim`` set to
d for losses that have one) on a dataset of ``--num-samples`` pairs and timed on the same
L2-normalised (B, d) float32 leaf embeddings (plus augmented views for losses with
``needs_views``), at epoch 1 (the moving-average path) with fresh distinct indices each call.
Calls are interleaved round-robin over the losses so that drifts in machine load hit all of them
alike; each loss's time is the median of ``--repeats`` calls after ``--warmup`` calls. The table
gives ms and the ratio to ``clip``, and PASS/FAIL against the speed goals (the ratio at every
batch size within the goal; see reference/losses.md §13 for the reference code's ratios).
Run it on an otherwise idle machine: with 2 threads on 2 busy cores, preemption adds whole
scheduler slices (milliseconds) to many calls and the medians mean nothing.
Usage: python benchmarks/loss_speed.py [--threads 2] [--dim 256] [--batch-sizes 128 256]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import median_seconds

from trainables.losses import LOSS_NAMES, build_loss, loss_defaults

GOALS = {"sogclr": 2.0, "isogclr": 2.0, "amclr": 5.0, "xamclr": 7.0}  # max ratio to clip


def make_call(name: str, batch: int, dim: int, num_samples: int, device: torch.device):
    hparams = {"embed_dim": dim} if "embed_dim" in loss_defaults(name) else {}
    loss_fn = build_loss(name, num_samples=num_samples, **hparams).to(device)
    generator = torch.Generator().manual_seed(0)
    views = [
        F.normalize(torch.randn(batch, dim, generator=generator), dim=1).to(device).requires_grad_()
        for _ in range(4)
    ]
    needs_views = loss_fn.needs_views
    # fresh distinct indices per call, drawn before timing: one epoch's batches, cycled
    order = torch.randperm(num_samples, generator=generator)
    indices = [chunk.to(device) for chunk in order.split(batch) if len(chunk) == batch]
    calls = iter(range(1 << 62))

    def call() -> None:
        for view in views:
            view.grad = None
        index = indices[next(calls) % len(indices)]
        extra = {"image_aug_emb": views[1], "text_aug_emb": views[3]} if needs_views else {}
        loss_fn(views[0], views[2], index, epoch=1, **extra).loss.backward()

    return call


def time_losses(
    names: list[str], batch: int, dim: int, num_samples: int, warmup: int, repeats: int, device
) -> dict[str, float]:
    """Median ms per forward + backward of each loss, interleaved round-robin."""
    calls = {name: make_call(name, batch, dim, num_samples, device) for name in names}
    return {
        name: 1e3 * seconds
        for name, seconds in median_seconds(calls, warmup, repeats, device).items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--num-samples", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = ["clip", *(name for name in LOSS_NAMES if name != "clip")]
    results = {
        batch: time_losses(
            names, batch, args.dim, args.num_samples, args.warmup, args.repeats, device
        )
        for batch in args.batch_sizes
    }

    print(
        f"forward+backward, {device.type}, {args.threads} threads, d={args.dim}, "
        f"median of {args.repeats} after {args.warmup} warm-up (torch {torch.__version__})"
    )
    header = f"{'loss':<16}" + "".join(f"{f'B={b} ms':>12}{'ratio':>8}" for b in args.batch_sizes)
    print(header + f"{'goal':>8}  verdict")
    for name in names:
        row = f"{name:<16}"
        ratios = []
        for batch in args.batch_sizes:
            ms = results[batch][name]
            ratios.append(ms / results[batch]["clip"])
            row += f"{ms:>12.3f}{ratios[-1]:>7.2f}x"
        goal = GOALS.get(name)
        if goal is None:
            row += f"{'-':>8}  -"
        else:
            verdict = "PASS" if max(ratios) <= goal else "FAIL"
            row += f"{goal:>7.1f}x  {verdict}"
        print(row)


if __name__ == "__main__":
    main()
