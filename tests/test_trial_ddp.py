"""A data-parallel trial is the one-process trial at the same global batch.

Two gloo ranks on the CPU run the real training loop (``_train_one_epoch``, with the trial's
``DataParallel``: rank shares of the (seed, epoch) order, all-gathered loss, global BatchNorm,
averaged gradients) for two epochs of a small dataset, in float64; rank 0 runs the same
epochs on one process at the global batch. For every loss the per-epoch train losses, the
parameters after the optimizer steps, the BatchNorm statistics and the loss's per-sample state
agree to float64 rounding; so do the local-loss forms.
"""

import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from cluster_helpers import free_port

from trainables.config import DataPaths, TrialConfig
from trainables.distributed import DataParallel, RankShare
from trainables.losses import LOSS_NAMES
from trainables.model_config import ModelConfig
from trainables.synth import write_synthetic_dataset
from trainables.trial import EpochOrder, _train_one_epoch, build_state, run_trial, train_loader
from trainables.trial_data import load_trial_data

WORLD, BATCH, EPOCHS = 2, 16, 2
MODEL = ModelConfig(embed_dim=16, image_width=4, text_width=8, text_layers=1, text_heads=1)
# a few losses with other settings: per-sample views, a learnable temperature, other optimizers
CASES = [(name, {}) for name in LOSS_NAMES] + [
    ("amclr", {"view_mode": "sample", "optimizer": "lamb"}),
    ("clip", {"loss_params": {"learnable_temperature": True}, "optimizer": "sgd_nesterov"}),
]


def _train(cfg: TrialConfig, data, parallel: DataParallel) -> tuple[list[float], dict]:
    """Train losses of ``EPOCHS`` epochs and the final model and loss state dicts."""
    state = build_state(cfg, data)
    state.model.double()
    state.loss_fn.double()
    parallel.prepare(state.model, state.loss_fn)
    order = EpochOrder(len(data.train), cfg.seed)
    loader = train_loader(cfg, data, order, parallel)
    losses = []
    for epoch in range(EPOCHS):
        order.epoch = epoch
        losses.append(_train_one_epoch(cfg, data, state, loader, epoch, parallel)["train_loss"])
    return losses, {**state.model.state_dict(), **state.loss_fn.state_dict()}


def _rank(rank: int, port: int, data_dir: str, cases: list[tuple[str, dict]]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # the model, the loss and the normalised images
    try:
        base = TrialConfig(data=DataPaths(data_dir), model=MODEL, batch_size=BATCH)
        data = load_trial_data(base)
        for name, overrides in cases:
            cfg = TrialConfig(**(base.__dict__ | {"loss": name} | overrides))
            losses, state = _train(cfg, data, DataParallel.current())
            if rank != 0:
                continue
            ref_losses, ref_state = _train(cfg, data, DataParallel())
            where = f"{name} {overrides}"
            # train_loss is accumulated in float32 by the trial (the local form's per-rank
            # values are averaged); parameters and state are float64
            assert losses == pytest.approx(ref_losses, rel=1e-6), f"{where}: {losses}"
            assert state.keys() == ref_state.keys()
            for key, value in state.items():
                torch.testing.assert_close(value, ref_state[key], msg=f"{where} {key}")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 train pairs: 3 global batches per epoch."""
    root = tmp_path_factory.mktemp("synth-ddp") / "data"
    write_synthetic_dataset(root, seed=0, n_train=48, n_retrieval=8, zeroshot_per_class=1)
    return root


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_two_gloo_workers_train_every_loss_as_one_process(small_dataset: Path):
    cases = CASES + [(name, {"loss_form": "local"}) for name in LOSS_NAMES]
    mp.spawn(_rank, args=(free_port(), str(small_dataset), cases), nprocs=WORLD, join=True)


def _resume_rank(rank: int, port: int, data_dir: str, keep: str) -> None:
    """Two epochs, then epoch 2 again from rank 0's checkpoint of epoch 1 on every rank."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # the model, the loss and the normalised images
    try:
        cfg = TrialConfig(
            data=DataPaths(data_dir), model=MODEL, batch_size=BATCH, epochs=2, loss="sogclr"
        )
        uninterrupted: list[dict] = []

        def report(metrics: dict, checkpoint_dir: Path | None) -> None:
            assert (checkpoint_dir is not None) == (rank == 0)  # rank 0 checkpoints
            uninterrupted.append(metrics)
            if checkpoint_dir is not None and metrics["epoch"] == 1:
                shutil.copytree(checkpoint_dir, Path(keep))

        run_trial(cfg, report)
        dist.barrier()
        resumed: list[dict] = []
        run_trial(cfg, lambda metrics, _: resumed.append(metrics), resume_from=Path(keep))
        untimed = [{k: v for k, v in m.items() if not k.startswith("time_")} for m in resumed]
        assert untimed == [{k: v for k, v in uninterrupted[1].items() if not k.startswith("time_")}]
        assert ("r_mean" in resumed[0]) == (rank == 0)  # rank 0 evaluates
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not built in")
def test_every_rank_resumes_from_rank_0s_checkpoint_exactly(small_dataset: Path, tmp_path):
    keep = str(tmp_path / "epoch1")
    mp.spawn(_resume_rank, args=(free_port(), str(small_dataset), keep), nprocs=WORLD, join=True)


def test_rank_shares_are_the_global_batches_in_order():
    order = list(range(20))[::-1]
    shares = [list(RankShare(order, 8, rank, 2, 20)) for rank in range(2)]
    assert [len(s) for s in shares] == [8, 8]  # 2 full global batches of 8, 4 left over
    batches = [shares[0][k : k + 4] + shares[1][k : k + 4] for k in (0, 4)]
    assert batches == [order[0:8], order[8:16]]
