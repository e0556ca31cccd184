"""Equal tuning budget per (loss, optimizer) cell inside one Ray Tune experiment.

:class:`PerCellSearch` holds one searcher (one Optuna study) per cell and hands the next trial
to the cell with the fewest trials so far, never more than ``trials_per_cell`` to any cell.
:class:`PerCellASHA` holds one ``ASHAScheduler`` per cell, so a trial's rungs compare it only
with trials of its own cell. The first trial of a cell to reach a rung always continues
(ASHA's cutoff needs earlier results at that rung), so a cell ends without a full-budget
trial only when a trial that passed a rung first later fails (``clipstudy confirm`` then
names the cell). Ray still places all trials on the cluster together. Ray does not save
scheduler state, so a resumed sweep starts every cell's rungs afresh.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Mapping

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Searcher

from study.optuna_bridge import TruthfulOptunaSearch


class PerCellSearch(Searcher):
    """Round-robin over cells, each suggesting from its own searcher.

    Args:
        searchers: cell ("loss:optimizer") -> searcher whose space has that cell only.
        trials_per_cell: the trial budget of every cell.
        metric, mode: as for any Ray ``Searcher``.
    """

    def __init__(
        self, searchers: Mapping[str, Searcher], trials_per_cell: int, metric: str, mode: str
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.searchers = searchers
        self.trials_per_cell = trials_per_cell
        self.cell_of_trial: dict[str, str] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        searchers = self.searchers.values()
        return all([s.set_search_properties(metric, mode, config, **spec) for s in searchers])

    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]
        # Ray's annotation says dict | None, but Searcher.FINISHED, a str, is the documented
        # way to say "no more trials"
        counts = Counter(self.cell_of_trial.values())
        open_cells = [cell for cell in self.searchers if counts[cell] < self.trials_per_cell]
        if not open_cells:
            return Searcher.FINISHED
        cell = min(open_cells, key=lambda c: counts[c])
        config = self.searchers[cell].suggest(trial_id)
        if config not in (None, Searcher.FINISHED):
            self.cell_of_trial[trial_id] = cell
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searchers[self.cell_of_trial[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        cell = self.cell_of_trial[trial_id]
        self.searchers[cell].on_trial_complete(trial_id, result=result, error=error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        """The state :meth:`save` wrote; Optuna trials asked after it (lost with a killed
        driver) are handed out again rather than asked anew, and trials that finished after
        it are not told again when Ray reruns them."""
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))
        for searcher in self.searchers.values():
            if isinstance(searcher, TruthfulOptunaSearch):
                searcher.requeue_lost_trials()
                searcher.skip_trials_finished_since_snapshot()


class PerCellASHA(FIFOScheduler):
    """ASHA within each cell: one ``ASHAScheduler(**asha_kwargs)`` per ``trial.config["cell"]``.

    Trials run in submission order (FIFO), as with a single ASHA.
    """

    def __init__(self, **asha_kwargs) -> None:
        super().__init__()
        self._metric = asha_kwargs.get("metric")  # what Tune checks the results for
        self.asha_kwargs = asha_kwargs
        self.by_cell: dict[str, ASHAScheduler] = {}

    def _asha(self, trial) -> ASHAScheduler:
        cell = trial.config["cell"]
        if cell not in self.by_cell:
            self.by_cell[cell] = ASHAScheduler(**self.asha_kwargs)
        return self.by_cell[cell]

    def on_trial_add(self, tune_controller, trial) -> None:
        self._asha(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._asha(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._asha(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._asha(trial).on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._asha(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return "\n".join(f"{cell}: {asha.debug_string()}" for cell, asha in self.by_cell.items())
