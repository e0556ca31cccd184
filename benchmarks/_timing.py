"""The timing loop the benchmarks share: calls interleaved round-robin, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import torch


def synchronizer(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def median_seconds(
    calls: Mapping[str, Callable[[], object]], warmup: int, repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each of ``calls`` over ``repeats`` rounds after ``warmup``
    untimed ones; the calls are interleaved round-robin so that drifts in machine load hit all
    of them alike, each timed between two device synchronisations."""
    sync = synchronizer(device)
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(warmup + repeats):
        for name, call in calls.items():
            sync()
            start = time.perf_counter()
            call()
            sync()
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
