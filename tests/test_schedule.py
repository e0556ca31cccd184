"""Learning-rate schedule: linear warm-up, cosine decay to min_ratio, resumable state."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from trainables.schedule import lr_multiplier, warmup_cosine

W, T, MIN = 10, 110, 0.1


def mult(step: int, *, warmup: int = W, total: int = T, min_ratio: float = MIN) -> float:
    return lr_multiplier(step, warmup_steps=warmup, total_steps=total, min_ratio=min_ratio)


def test_warmup_is_linear_and_reaches_one():
    values = [mult(s) for s in range(W)]
    assert values[0] == pytest.approx(1 / W)
    assert values[-1] == 1.0
    steps = [b - a for a, b in itertools.pairwise(values)]
    assert steps == pytest.approx([1 / W] * (W - 1))
    assert mult(W) == 1.0  # first decay step starts at the top


def test_decay_is_monotone_and_ends_at_min_ratio():
    values = [mult(s) for s in range(W, T + 20)]
    assert all(b <= a for a, b in itertools.pairwise(values))
    assert values[0] == 1.0
    assert mult(T) == pytest.approx(MIN)
    assert mult(T + 15) == pytest.approx(MIN)  # clamped after the budget
    assert min(values) == pytest.approx(MIN)


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.1),
        (4, 0.5),
        (9, 1.0),
        (10, 1.0),
        # p = 0.25: 0.1 + 0.9 * (1 + cos(pi/4)) / 2
        (35, 0.1 + 0.45 * (1 + math.sqrt(0.5))),
        (60, 0.55),  # p = 0.5: halfway between 1 and min_ratio
        (85, 0.1 + 0.45 * (1 - math.sqrt(0.5))),  # p = 0.75
        (110, 0.1),
    ],
)
def test_known_values(step, expected):
    assert mult(step) == pytest.approx(expected, abs=1e-12)


def test_no_warmup_starts_at_one():
    assert mult(0, warmup=0, total=4, min_ratio=0.0) == 1.0
    assert mult(2, warmup=0, total=4, min_ratio=0.0) == pytest.approx(0.5)
    assert mult(4, warmup=0, total=4, min_ratio=0.0) == pytest.approx(0.0, abs=1e-15)


def _optimizer(lr: float = 0.2) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(3))], lr=lr, momentum=0.9)


def _lrs(optimizer, scheduler, n: int) -> list[float]:
    out = []
    for _ in range(n):
        optimizer.step()
        scheduler.step()
        out.append(optimizer.param_groups[0]["lr"])
    return out


def test_warmup_cosine_drives_the_optimizer_lr():
    optimizer = _optimizer(0.2)
    scheduler = warmup_cosine(optimizer, warmup_steps=W, total_steps=T, min_ratio=MIN)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2 * mult(0))
    lrs = _lrs(optimizer, scheduler, T)
    assert lrs == pytest.approx([0.2 * mult(k) for k in range(1, T + 1)])


def test_warmup_cosine_state_dict_round_trip_continues_identically():
    kwargs = {"warmup_steps": W, "total_steps": T, "min_ratio": MIN}
    optimizer = _optimizer()
    scheduler = warmup_cosine(optimizer, **kwargs)
    _lrs(optimizer, scheduler, 17)
    saved_opt, saved_sched = optimizer.state_dict(), scheduler.state_dict()
    assert saved_sched["last_epoch"] == 17

    restored_opt = _optimizer()
    restored_sched = warmup_cosine(restored_opt, **kwargs)
    restored_opt.load_state_dict(saved_opt)
    restored_sched.load_state_dict(saved_sched)
    assert restored_opt.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]

    expected = _lrs(optimizer, scheduler, 30)
    assert _lrs(restored_opt, restored_sched, 30) == expected  # exact
    assert expected == pytest.approx([0.2 * mult(k) for k in range(18, 48)])
