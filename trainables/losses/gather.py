"""The gather of a data-parallel trial: every rank's rows, in rank order (base.FeatureGather)."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


class _GatherRows(torch.autograd.Function):
    """cat over ranks of a (B, ...) tensor; backward: this rank's rows of the gradient summed
    over ranks (every rank's loss may depend on every row)."""

    @staticmethod
    def forward(ctx, tensor: Tensor, gather: AllGather) -> Tensor:
        ctx.gather = gather
        return gather.concatenate(tensor)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        gather: AllGather = ctx.gather
        # a fresh contiguous buffer: gloo reads non-contiguous tensors (e.g. the gradient of
        # a transposed product) wrongly, and all_reduce works in place
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total, group=gather.group)
        return total[gather.local_rows(grad.shape[0] // gather.world_size)], None


class AllGather:
    """Concatenate a (B, ...) tensor over the ranks of ``group`` (default: the whole world).

    Every rank must pass the same shape. Tensors that require grad keep their gradient path:
    the backward sums over ranks the gradient that each rank's loss sends to this rank's rows
    (an all-reduce of the (W·B, ...) gradient). When every rank computes the same loss on the
    gathered batch (the full-matrix form), a rank's rows therefore receive W times the loss's
    gradient, and DDP's average over the W ranks restores it exactly. Indices and detached
    tensors are gathered without autograd.
    """

    def __init__(self, group: dist.ProcessGroup | None = None) -> None:
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def __call__(self, tensor: Tensor) -> Tensor:
        if tensor.requires_grad:
            return _GatherRows.apply(tensor, self)
        return self.concatenate(tensor)

    def concatenate(self, tensor: Tensor) -> Tensor:
        """The (W·B, ...) concatenation of every rank's ``tensor``, without autograd."""
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous(), group=self.group)
        return torch.cat(parts)

    def local_rows(self, batch_size: int) -> slice:
        return slice(self.rank * batch_size, (self.rank + 1) * batch_size)
