"""A concise live view of a sweep: one line per epoch result and per finished trial."""

from __future__ import annotations

import sys
import time

from ray.tune import Callback


class ProgressPrinter(Callback):
    """Prints, for example::

        [  41s] 3ac1f2e9 sogclr+adamw lr=3.2e-03  epoch 2/4  r_mean 25.10  (cell best 31.20)
        [  47s] 3ac1f2e9 sogclr+adamw lr=3.2e-03  stopped by ASHA after 2/4 epochs

    Trials are named by their Ray trial id, the ``ray_trial_id`` attribute of the Optuna trial;
    the best value is that of the trial's (loss, optimizer) cell.
    """

    def __init__(self, metric: str, mode: str, max_epochs: int) -> None:
        self.metric, self.mode, self.max_epochs = metric, mode, max_epochs
        self.start = time.monotonic()
        self.best: dict[str, float] = {}  # cell -> best value reported so far

    def _label(self, trial) -> str:
        config = trial.config
        return (
            f"{trial.trial_id} {config.get('loss')}+{config.get('optimizer')} "
            f"lr={config.get('lr', float('nan')):.1e}"
        )

    def _print(self, text: str) -> None:
        print(f"[{time.monotonic() - self.start:5.0f}s] {text}", file=sys.stdout, flush=True)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        value = result.get(self.metric)
        if value is None:
            return
        cell = trial.config.get("cell")
        best = self.best.setdefault(cell, value)
        self.best[cell] = max(best, value) if self.mode == "max" else min(best, value)
        self._print(
            f"{self._label(trial)}  epoch {result.get('epoch')}/{self.max_epochs}  "
            f"{self.metric} {value:.2f}  (cell best {self.best[cell]:.2f})"
        )

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        epochs = (trial.last_result or {}).get("epoch", 0)
        outcome = "complete" if epochs >= self.max_epochs else "stopped by ASHA"
        self._print(f"{self._label(trial)}  {outcome} after {epochs}/{self.max_epochs} epochs")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._print(f"{self._label(trial)}  FAILED (reason in the Optuna study and trials table)")
