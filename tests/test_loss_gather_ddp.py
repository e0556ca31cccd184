"""Two gloo processes on the CPU, each with half of a global batch and ``AllGather``, give every
loss the value, per-sample state and gradients of one process with the whole batch; so does the
local-loss form (each rank's anchors against all columns) of every loss, whose per-rank values
and parameter gradients average to those of one process."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from cluster_helpers import free_port
from loss_references import unit_rows

from trainables.losses import LOSS_NAMES, build_loss, loss_defaults
from trainables.losses.gather import AllGather

WORLD, GLOBAL_BATCH, DIM, SAMPLES = 2, 8, 6, 16
SCHEDULE = [(0, [3, 9, 0, 14, 7, 1, 12, 5]), (1, [12, 0, 8, 2, 7, 15, 4, 9])]  # (epoch, index)


def _build(name: str):
    hparams = {"embed_dim": DIM, "dropout": 0.0} if "embed_dim" in loss_defaults(name) else {}
    torch.manual_seed(0)  # the same initial loss parameters on every rank and in the reference
    return build_loss(name, num_samples=SAMPLES, **hparams).double()


def _views(step: int) -> list[torch.Tensor]:
    """The global batch's four views (x, t, x', t'), (GLOBAL_BATCH, DIM) float64."""
    return [unit_rows(GLOBAL_BATCH, DIM, seed=10 * step + k) for k in range(4)]


def _run(loss_fn, views, index, epoch, rows: slice):
    leaves = [v[rows].clone().requires_grad_() for v in views]
    image, text, image_aug, text_aug = leaves
    extra = {"image_aug_emb": image_aug, "text_aug_emb": text_aug} if loss_fn.needs_views else {}
    out = loss_fn(image, text, torch.tensor(index)[rows], epoch=epoch, **extra)
    loss_fn.zero_grad()
    out.loss.backward()
    grads = [leaf.grad for leaf in leaves[: 4 if loss_fn.needs_views else 2]]
    return out, grads, {n: p.grad.clone() for n, p in loss_fn.named_parameters()}


def _mean_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    total = tensor.detach().clone()
    dist.all_reduce(total)
    return total / WORLD


def _rank(rank: int, port: int, local_loss: bool) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    # the local form's values differ per rank: their mean (what the trial reports, and what
    # DDP's gradient average optimises) is the one-process value
    average = _mean_over_ranks if local_loss else (lambda tensor: tensor)
    try:
        local = GLOBAL_BATCH // WORLD
        mine = slice(rank * local, (rank + 1) * local)
        for name in LOSS_NAMES:
            parallel, single = _build(name), _build(name)
            parallel.gather = AllGather()
            parallel.local_loss = local_loss
            for step, (epoch, index) in enumerate(SCHEDULE):
                views = _views(step)
                out, grads, param_grads = _run(parallel, views, index, epoch, mine)
                ref, ref_grads, ref_param_grads = _run(single, views, index, epoch, slice(None))
                torch.testing.assert_close(average(out.loss), ref.loss, msg=name)
                torch.testing.assert_close(average(out.objective), ref.objective, msg=name)
                for grad, ref_grad in zip(grads, ref_grads, strict=True):  # DDP averages /W
                    torch.testing.assert_close(grad / WORLD, ref_grad[mine], msg=name)
                for key, grad in param_grads.items():
                    torch.testing.assert_close(
                        average(grad), ref_param_grads[key], msg=f"{name} {key}"
                    )
                for key, tensor in parallel.state_dict().items():
                    torch.testing.assert_close(tensor, single.state_dict()[key], msg=key)
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_two_gloo_ranks_match_one_process_for_every_loss():
    mp.spawn(_rank, args=(free_port(), False), nprocs=WORLD, join=True)


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_the_local_loss_form_matches_one_process():
    mp.spawn(_rank, args=(free_port(), True), nprocs=WORLD, join=True)
