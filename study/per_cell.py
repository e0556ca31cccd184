"""Equal tuning budget per (loss, optimizer) cell inside one Ray Tune experiment.

:class:`PerCellSearch` holds one searcher (one Optuna study) per cell and hands the next trial
to the cell with the fewest trials so far, never more than ``trials_per_cell`` to any cell.
:class:`PerCellASHA` holds one ``ASHAScheduler`` per cell, so a trial's rungs compare it only
with trials of its own cell. The first trial of a cell to reach a rung always continues
(ASHA's cutoff needs earlier results at that rung), so a cell ends without a full-budget
trial only when a trial that passed a rung first later fails (``clipstudy confirm`` then
names the cell). Ray still places all trials on the cluster together. Ray does not save
scheduler state, so a resumed sweep starts every cell's rungs afresh.

Warm start (``[sampler] warm_start``): before a cell suggests, each other cell's best COMPLETE
trial that it has not tried yet is enqueued in its study (Optuna's ``enqueue_trial``), with
the parameters whose distribution is the same in both cells (the same loss with another
optimizer shares temperature and weight decay; the same optimizer with another loss also
shares lr); the rest are sampled. A transplanted trial counts against the cell's own budget
and carries the user attribute ``warm_start_from`` ("loss:optimizer#number"); parameters the
cell has already run together (paired start-ups draw the same first values) are not repeated.
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Mapping

import optuna
from optuna.trial import TrialState
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from study.optuna_bridge import TruthfulOptunaSearch
from study.ray_optuna_adapter import asked_trials


class PerCellSearch(Searcher):
    """Round-robin over cells, each suggesting from its own searcher.

    Args:
        searchers: cell ("loss:optimizer") -> searcher whose space has that cell only.
        trials_per_cell: the trial budget of every cell.
        metric, mode: as for any Ray ``Searcher``.
        warm_start: seed each cell with its neighbours' best configs (module docstring).
    """

    def __init__(
        self,
        searchers: Mapping[str, Searcher],
        trials_per_cell: int,
        metric: str,
        mode: str,
        warm_start: bool = False,
    ) -> None:
        super().__init__(metric=metric, mode=mode)
        self.searchers = searchers
        self.trials_per_cell = trials_per_cell
        self.cell_of_trial: dict[str, str] = {}
        self.warm_start = warm_start
        self.transplanted: set[tuple[str, str, int]] = set()  # (cell, neighbour, number)
        self.adopted = False  # whether the cells' trials were read from their studies

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        searchers = self.searchers.values()
        return all([s.set_search_properties(metric, mode, config, **spec) for s in searchers])

    def suggest(self, trial_id: str) -> dict | str | None:  # type: ignore[override]
        # Ray's annotation says dict | None, but Searcher.FINISHED, a str, is the documented
        # way to say "no more trials"
        self._adopt_stored_trials_once()
        counts = Counter(self.cell_of_trial.values())
        open_cells = [cell for cell in self.searchers if counts[cell] < self.trials_per_cell]
        if not open_cells:
            return Searcher.FINISHED
        cell = min(open_cells, key=lambda c: counts[c])
        if getattr(self, "warm_start", False):  # absent in older pickles
            self._transplant_into(cell)
        config = self.searchers[cell].suggest(trial_id)
        if config not in (None, Searcher.FINISHED):
            self.cell_of_trial[trial_id] = cell
        return config

    def _asked(self, cell: str) -> list[optuna.trial.Trial]:
        searcher = self.searchers[cell]
        return list(asked_trials(searcher).values()) if isinstance(searcher, OptunaSearch) else []

    def _transplant_into(self, cell: str) -> None:
        """Enqueue in ``cell``'s study each neighbour's best COMPLETE trial not tried yet,
        restricted to the parameters both distribute alike (nothing before ``cell`` has asked
        a trial: its distributions are unknown until then)."""
        asked = self._asked(cell)
        if not asked:
            return
        own = asked[0].distributions
        for neighbour in self.searchers:
            if neighbour == cell or not (neighbour_trials := self._asked(neighbour)):
                continue
            study = neighbour_trials[0].study
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if not complete:
                continue
            sign = 1.0 if self.mode == "max" else -1.0
            best = max(complete, key=lambda t: sign * float(t.value))  # type: ignore[arg-type]
            if (cell, neighbour, best.number) in self.transplanted:
                continue
            self.transplanted.add((cell, neighbour, best.number))
            params = {k: v for k, v in best.params.items() if own.get(k) == best.distributions[k]}
            tried = asked[0].study.get_trials(deepcopy=False)
            if params and not any(params.items() <= t.params.items() for t in tried):
                asked[0].study.enqueue_trial(
                    params, user_attrs={"warm_start_from": f"{neighbour}#{best.number}"}
                )

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searchers[self._cell(trial_id)].on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        self.searchers[self._cell(trial_id)].on_trial_complete(trial_id, result=result, error=error)

    def unfinished_trials(self) -> set[str]:
        """The Ray trials handed out (or taken from the studies) whose end this searcher has
        not seen."""
        self._adopt_stored_trials_once()
        return {
            trial_id
            for trial_id, cell in self.cell_of_trial.items()
            if not (
                isinstance(searcher := self.searchers[cell], TruthfulOptunaSearch)
                and searcher.has_finished(trial_id)
            )
        }

    def _cell(self, trial_id: str) -> str:
        """The cell of a Ray trial; one this searcher has not seen (Ray restored it, but this
        searcher was not: a kill left Ray's snapshot without the searcher's) is looked up in
        the studies."""
        if trial_id not in self.cell_of_trial:
            self._adopt_stored_trials()
        return self.cell_of_trial[trial_id]

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__dict__, file)

    def restore(self, checkpoint_path: str) -> None:
        """The state :meth:`save` wrote, with each cell's trials taken from its study, which
        is newer than any snapshot (:meth:`TruthfulOptunaSearch.adopt_stored_trials`)."""
        with open(checkpoint_path, "rb") as file:
            self.__dict__.update(pickle.load(file))
        self._adopt_stored_trials()

    def _adopt_stored_trials_once(self) -> None:
        if not getattr(self, "adopted", False):  # absent in older pickles
            self._adopt_stored_trials()

    def _adopt_stored_trials(self) -> None:
        """Take every cell's trials from its study: which Ray trial runs which Optuna trial,
        and so how much of the cell's budget is spent. Done on restore, and once by a searcher
        that Ray did not restore (its first ``suggest`` in a new sweep reads empty studies)."""
        for cell, searcher in self.searchers.items():
            if isinstance(searcher, TruthfulOptunaSearch):
                self.cell_of_trial = {t: c for t, c in self.cell_of_trial.items() if c != cell}
                self.cell_of_trial.update(dict.fromkeys(searcher.adopt_stored_trials(), cell))
        self.adopted = True


class PerCellConcurrencyLimiter(ConcurrencyLimiter):
    """Ray's ``ConcurrencyLimiter`` over a :class:`PerCellSearch`, whose live trials are, at
    every suggestion, only those the searcher has not seen end.

    After a kill -9, the limiter's restored live trials can name a trial that Ray's own
    snapshot does not hold, or holds finished (the two are uploaded as separate files): Ray
    never ends it again, so it would hold a slot for ever, and with every slot so held the
    resumed sweep waits with nothing running.
    """

    searcher: PerCellSearch

    def suggest(self, trial_id: str) -> dict | None:
        self.live_trials &= self.searcher.unfinished_trials()
        self.num_unfinished_live_trials = len(self.live_trials)
        return super().suggest(trial_id)


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
