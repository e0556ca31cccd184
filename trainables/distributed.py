"""Data-parallel trials: what a trial does differently on W > 1 processes (torch.distributed).

The trial stays Ray-free: whoever starts the W processes (Ray Train's ``TorchTrainer``, or
``torch.multiprocessing`` in the tests) initialises the default process group, and
:meth:`DataParallel.current` reads rank and world size from it. With W processes and global
batch B (``trial.batch_size``, divisible by W):

- the (seed, epoch) epoch order is the same on every rank and rank r loads rows
  [r·B/W, (r+1)·B/W) of each global batch (:class:`RankShare`), so the global batch of step s is
  the same set of pairs, in the same order, for any W;
- the loss sees the global batch: its gather is :class:`~trainables.losses.gather.AllGather`;
- BatchNorm layers use the statistics of the global batch (:class:`GlobalBatchNorm2d`);
- after the backward pass every gradient (towers and loss parameters) is averaged over the
  ranks in one all-reduce (:meth:`DataParallel.average_gradients`), as DDP does, so every rank
  takes the same optimizer step from the same parameters.

The per-sample loss state then stays identical on every rank, and the trial is W = 1 at the
global batch up to floating-point summation order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from trainables.losses import ContrastiveLoss
from trainables.losses.gather import AllGather


class RankShare(torch.utils.data.Sampler[int]):
    """Rank ``rank``'s contiguous share of every full global batch of ``order``.

    ``order`` yields the epoch's permutation; of each run of ``batch_size`` consecutive
    indices (the global batch; an incomplete last one is dropped) this sampler yields positions
    [rank·b, (rank+1)·b) with b = batch_size / world_size. A DataLoader with batch size b over
    it gives rank r its rows of the same global batches a single process would see.
    """

    def __init__(
        self, order: Iterable[int], batch_size: int, rank: int, world_size: int, size: int
    ) -> None:
        self.order, self.batch_size, self.size = order, batch_size, size
        self.local = batch_size // world_size
        self.start = rank * self.local

    def __iter__(self) -> Iterator[int]:
        indices = list(self.order)
        for first in range(0, len(indices) - self.batch_size + 1, self.batch_size):
            yield from indices[first + self.start : first + self.start + self.local]

    def __len__(self) -> int:
        return (self.size // self.batch_size) * self.local


class _SumOverRanks(torch.autograd.Function):
    """Σ_r x_r on every rank; backward: the gradient summed over ranks (every rank's loss
    depends on the sum), by an all-reduce of a contiguous copy as in ``AllGather``."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` normalising with the mean and variance of the global batch.

    In training, with every rank's (b, C, H, W) input x_r and n = W·b·H·W values per channel::

        μ = (1/n) Σ_r Σ x_r,    σ² = (1/n) Σ_r Σ (x_r − μ)²,    y = γ (x − μ) / √(σ² + ε) + β

    (two passes, each one differentiable all-reduce), and the running statistics move as
    ``BatchNorm2d``'s do with the global batch (unbiased σ²·n/(n−1)). Evaluation uses the running
    statistics. Same parameters and buffers as ``BatchNorm2d``, so checkpoints are
    interchangeable. (``torch.nn.SyncBatchNorm`` does this on GPUs only.)
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return super().forward(x)
        dtype = x.dtype
        x = x.float() if dtype in (torch.float16, torch.bfloat16) else x
        count = x.numel() // x.shape[1] * dist.get_world_size()
        mean = _SumOverRanks.apply(x.sum(dim=(0, 2, 3))) / count
        centred = x - mean[None, :, None, None]
        var = _SumOverRanks.apply(centred.square().sum(dim=(0, 2, 3))) / count
        self._update_running_stats(mean.detach(), var.detach(), count)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor, count: int) -> None:
        if not self.track_running_stats or self.num_batches_tracked is None:
            return
        assert self.running_mean is not None and self.running_var is not None
        self.num_batches_tracked.add_(1)
        factor = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        unbiased = var * count / max(count - 1, 1)
        self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)


def with_global_batch_norm(module: nn.Module) -> None:
    """Make every ``BatchNorm2d`` under ``module`` a :class:`GlobalBatchNorm2d`, in place
    (same parameter and buffer objects, so an optimizer built on them stays valid)."""
    for child in module.modules():
        if type(child) is nn.BatchNorm2d:
            child.__class__ = GlobalBatchNorm2d


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel trial: rank r of ``world_size`` W (W = 1: a
    trial on one process, where every method is the identity)."""

    rank: int = 0
    world_size: int = 1

    @classmethod
    def current(cls) -> DataParallel:
        """The initialised default process group's rank and size; one process otherwise."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def is_main(self) -> bool:
        """Rank 0: the rank that evaluates, reports metrics and writes checkpoints."""
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        """Where the tensors of a collective must live: this rank's GPU for NCCL, else the CPU."""
        if self.world_size > 1 and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def local_batch(self, batch_size: int) -> int:
        """b = B / W, this rank's rows of a global batch of ``batch_size``; ValueError (one
        line) unless W divides it."""
        if batch_size % self.world_size:
            raise ValueError(
                f"trial.batch_size {batch_size} must be divisible by resources."
                f"workers_per_trial {self.world_size} (each worker takes an equal share)"
            )
        return batch_size // self.world_size

    def sampler(self, order: Iterable[int], batch_size: int, size: int):
        """The sampler of this rank's loader over ``order`` (a permutation of ``size``
        indices): ``order`` itself on one process, its :class:`RankShare` otherwise."""
        if self.world_size == 1:
            return order
        return RankShare(order, batch_size, self.rank, self.world_size, size)

    def prepare(self, model: nn.Module, loss_fn: ContrastiveLoss) -> None:
        """Global BatchNorm statistics in ``model`` and the all-gather in ``loss_fn``."""
        if self.world_size == 1:
            return
        with_global_batch_norm(model)
        loss_fn.gather = AllGather()

    def gather(self, tensor: Tensor) -> Tensor:
        """The (W·b, ...) concatenation of every rank's (b, ...) ``tensor``, no gradient."""
        if self.world_size == 1:
            return tensor
        return AllGather().concatenate(tensor.to(self.device)).to(tensor.device)

    def rows(self, local_size: int) -> slice:
        """This rank's rows in the concatenation of every rank's ``local_size`` rows."""
        return slice(self.rank * local_size, (self.rank + 1) * local_size)

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank (all ranks take the same branch)."""
        if self.world_size == 1:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item())

    def mean(self, tensor: Tensor) -> Tensor:
        """The mean over ranks of ``tensor`` (the same on every rank)."""
        if self.world_size == 1:
            return tensor
        total = tensor.detach().clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total / self.world_size

    def average_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Replace every gradient by its mean over the ranks: one all-reduce of the flattened
        gradients (DDP's arithmetic, without its overlap with the backward pass)."""
        if self.world_size == 1:
            return
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for grad in grads:
            grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
            offset += grad.numel()
