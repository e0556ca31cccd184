"""Sweep diagnostics: pure functions from the sweep table (or the Optuna studies) to figures.

Same two-step shape as ``analysis.figures``: ``_get_<plot>_info`` -> ``NamedTuple`` -> figure.
These figures describe the search, not the evidence: claims come from the confirmation phase.

Sweep table (``trials.parquet``, ``study.results.trials_table``): one row per trial x epoch with
columns ``trial_id`` (unique), ``cell`` (``"loss:optimizer"``; each cell is tuned in its own
Optuna study), ``number`` (Optuna trial number *within the cell's study*, so numbers repeat
across cells), ``state`` (``COMPLETE``, ``PRUNED``, ``FAIL``), ``epoch`` (1-based), metric
columns and param columns (``loss``, ``optimizer``, ``lr``, ``weight_decay``, ``temperature``,
...; NaN where a cell's loss has no such param). Trials are keyed by ``trial_id``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import optuna
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from analysis.figures import require_columns

__all__ = [
    "MIN_COMPLETE_FOR_IMPORTANCE",
    "final_per_trial",
    "optimization_history",
    "parallel_coordinates",
    "param_importance",
    "rung_survival",
]

_STATE_ORDER = ("COMPLETE", "PRUNED", "FAIL")
# PED-ANOVA's target set is the top 10% of the trials (gamma' = 0.1): with fewer than 10
# COMPLETE trials it is a single trial, and the importances only say where that trial sits.
MIN_COMPLETE_FOR_IMPORTANCE = 10


def final_per_trial(sweep: pd.DataFrame) -> pd.DataFrame:
    """The last reported epoch of every trial, one row per ``trial_id``, sorted by
    ``(cell, number)``.

    Args:
        sweep: sweep table with ``trial_id, cell, number, state, epoch`` and metric/param
            columns.
    """
    require_columns(sweep, ["trial_id", "cell", "number", "state", "epoch"], "final_per_trial")
    if sweep.empty:
        return sweep.reset_index(drop=True)
    last = sweep.groupby("trial_id")["epoch"].transform("max")
    rows = sweep[sweep["epoch"] == last].drop_duplicates("trial_id", keep="last")
    return rows.sort_values(["cell", "number"], kind="stable").reset_index(drop=True)


def _empty_figure(message: str, title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title)
    return fig


def _cell_colours(cells: Sequence[str]) -> dict[str, str]:
    palette = plotly.colors.qualitative.Dark24
    return {cell: palette[i % len(palette)] for i, cell in enumerate(cells)}


# ------------------------------------------------------------------------ optimization history


class _HistoryInfo(NamedTuple):
    points: dict[str, tuple[list[str], list[int], list[float]]]  # state -> (cells, numbers, values)
    best: dict[str, tuple[list[int], list[float]]]  # cell -> (numbers, best so far), COMPLETE
    cells: list[str]  # every cell with a finite value, sorted


def _get_history_info(sweep: pd.DataFrame, metric: str, mode: str) -> _HistoryInfo:
    if mode not in ("max", "min"):
        raise ValueError(f"optimization_history: mode must be 'max' or 'min', got {mode!r}")
    require_columns(
        sweep, ["trial_id", "cell", "number", "state", "epoch", metric], "optimization_history"
    )
    final = final_per_trial(sweep)
    final = final[np.isfinite(final[metric].astype(float))]
    states = [s for s in _STATE_ORDER if s in set(final["state"])]
    states += sorted(set(final["state"]) - set(states))
    points = {}
    for state in states:
        rows = final[final["state"] == state]
        points[state] = (
            rows["cell"].astype(str).tolist(),
            rows["number"].astype(int).tolist(),
            rows[metric].astype(float).tolist(),
        )
    best = {}
    for cell, rows in final[final["state"] == "COMPLETE"].groupby("cell", sort=True):
        values = rows[metric].astype(float)  # in trial-number order (final_per_trial)
        running = values.cummax() if mode == "max" else values.cummin()
        best[str(cell)] = (rows["number"].astype(int).tolist(), running.tolist())
    return _HistoryInfo(points, best, sorted(final["cell"].astype(str).unique()))


def optimization_history(sweep: pd.DataFrame, metric: str, *, mode: str) -> go.Figure:
    """Final value of every trial by its number within its cell's study, and each cell's best
    so far over its COMPLETE trials.

    PRUNED trials are drawn (their value is a partial-budget one) but never count as best.
    Points and lines of a cell share one colour; a point's hover text names its cell.

    Args:
        sweep: sweep table (``trial_id, cell, number, state, epoch, <metric>``).
        metric: metric column.
        mode: ``"max"`` or ``"min"``, the direction of the studies.

    Returns:
        One marker ``go.Scatter`` per state present (named by the state: COMPLETE, PRUNED,
        FAIL; ``x`` = trial numbers within the cell, ``y`` = last reported value, ``text`` =
        cells; NaN values dropped), then one ``"hv"`` line per cell with a COMPLETE trial,
        named by the cell, sorted by name (``x`` = its COMPLETE trials' numbers, ``y`` = best
        so far).
    """
    info = _get_history_info(sweep, metric, mode)
    colours = _cell_colours(info.cells)
    symbols = {"COMPLETE": "circle", "PRUNED": "x", "FAIL": "triangle-down"}
    fig = go.Figure()
    for state, (cells, numbers, values) in info.points.items():
        fig.add_trace(
            go.Scatter(
                x=numbers,
                y=values,
                text=cells,
                mode="markers",
                name=state,
                marker={
                    "symbol": symbols.get(state, "circle"),
                    "size": 8,
                    "color": [colours[c] for c in cells],
                },
                opacity=1.0 if state == "COMPLETE" else 0.6,
                hovertemplate=f"%{{text}} #%{{x}}: %{{y:.3g}}<extra>{state}</extra>",
            )
        )
    for cell, (numbers, best) in info.best.items():
        fig.add_trace(
            go.Scatter(
                x=numbers,
                y=best,
                mode="lines",
                name=cell,
                line={"shape": "hv", "color": colours[cell]},
            )
        )
    fig.update_layout(
        title=f"optimization history per cell ({metric}, {mode}; lines: best COMPLETE so far)",
        xaxis_title="trial number within the cell's study",
        yaxis_title=f"{metric} at the last reported epoch",
    )
    return fig


# ----------------------------------------------------------------------------- rung survival


class _SurvivalInfo(NamedTuple):
    epochs: list[int]
    counts: list[int]  # trials whose last reported epoch >= epoch


def _get_survival_info(sweep: pd.DataFrame, max_epochs: int) -> _SurvivalInfo:
    require_columns(sweep, ["trial_id", "epoch"], "rung_survival")
    if max_epochs < 1:
        raise ValueError(f"rung_survival: max_epochs must be >= 1, got {max_epochs}")
    reached = sweep.groupby("trial_id")["epoch"].max().to_numpy()
    epochs = list(range(1, max_epochs + 1))
    return _SurvivalInfo(epochs, [int((reached >= e).sum()) for e in epochs])


def rung_survival(sweep: pd.DataFrame, *, max_epochs: int) -> go.Figure:
    """How many trials reached each epoch: the shape of ASHA's successive halving.

    Args:
        sweep: sweep table (``trial_id, epoch``); a trial reached epoch ``e`` when its last
            reported epoch is ``>= e``. Trials of every state count.
        max_epochs: the full budget; epochs ``1 .. max_epochs`` are drawn.

    Returns:
        One ``go.Bar`` named ``"trials"`` with ``x`` = epochs and ``y`` = counts.
    """
    info = _get_survival_info(sweep, max_epochs)
    fig = go.Figure(
        go.Bar(x=info.epochs, y=info.counts, name="trials", text=info.counts, textposition="auto")
    )
    fig.update_layout(title="trials reaching each epoch", xaxis_title="epoch", yaxis_title="trials")
    return fig


# ---------------------------------------------------------------------- parallel coordinates


class _Dimension(NamedTuple):
    label: str
    values: list[float]
    tickvals: list[float] | None
    ticktext: list[str] | None


class _ParallelInfo(NamedTuple):
    dimensions: list[_Dimension]  # params, then the metric last
    metric_values: list[float]
    n_trials: int


def _get_parallel_info(
    sweep: pd.DataFrame, metric: str, params: Sequence[str], states: Collection[str]
) -> _ParallelInfo:
    require_columns(sweep, [metric, *params], "parallel_coordinates")
    final = final_per_trial(sweep)
    final = final[final["state"].isin(list(states))]
    final = final.dropna(subset=[metric, *params])
    dims = []
    for p in params:
        col = final[p]
        if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            values = col.astype(float).to_numpy()
            if len(values) and (values > 0).all() and values.max() / values.min() >= 100:
                logs = np.log10(values)
                ticks = np.arange(np.floor(logs.min()), np.ceil(logs.max()) + 1)
                dims.append(
                    _Dimension(
                        f"log10 {p}",
                        logs.tolist(),
                        ticks.tolist(),
                        [f"1e{int(t)}" for t in ticks],
                    )
                )
            else:
                dims.append(_Dimension(p, values.tolist(), None, None))
        else:
            labels = sorted(col.astype(str).unique())
            code = {v: i for i, v in enumerate(labels)}
            dims.append(
                _Dimension(
                    p,
                    [float(code[v]) for v in col.astype(str)],
                    [float(i) for i in range(len(labels))],
                    labels,
                )
            )
    metric_values = final[metric].astype(float).tolist()
    dims.append(_Dimension(metric, metric_values, None, None))
    return _ParallelInfo(dims, metric_values, len(final))


def parallel_coordinates(
    sweep: pd.DataFrame,
    metric: str,
    params: Sequence[str],
    *,
    states: Collection[str] = ("COMPLETE",),
) -> go.Figure:
    """One line per trial through its params and its final value.

    Categorical params get one tick per value (sorted); positive numeric params spanning two
    decades or more are drawn as ``log10``. Trials missing a param (conditional spaces) or the
    metric are left out.

    Args:
        sweep: sweep table (``trial_id, cell, number, state, epoch, <metric>, <params>``).
        metric: metric column, the last axis and the line colour.
        params: param columns, in axis order.
        states: trial states drawn; default COMPLETE only, since a PRUNED trial's value is a
            partial-budget one (pass ``("COMPLETE", "PRUNED")`` to see where ASHA cut).

    Returns:
        One ``go.Parcoords`` with ``len(params) + 1`` dimensions, one line per kept trial
        (ordered by ``(cell, number)``).
    """
    info = _get_parallel_info(sweep, metric, params, states)
    dimensions = []
    for d in info.dimensions:
        dim: dict[str, object] = {"label": d.label, "values": d.values}
        if d.tickvals is not None:
            dim["tickvals"] = d.tickvals
            dim["ticktext"] = d.ticktext
        dimensions.append(dim)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={
                "color": info.metric_values,
                "colorscale": "Viridis",
                "showscale": True,
                "colorbar": {"title": {"text": metric}},
            },
            name=metric,
        )
    )
    fig.update_layout(title=f"parallel coordinates ({info.n_trials} trials, {metric})")
    return fig


# --------------------------------------------------------------------------- param importance


class _ImportanceInfo(NamedTuple):
    cells: list[str]  # sorted
    params: list[str]  # by mean importance over the evaluated cells, highest first
    z: list[list[float]]  # [cell][param]; NaN where not evaluated or not sampled in the cell
    too_few: dict[str, int]  # cell -> its COMPLETE trials, when below the minimum
    evaluator: str


def _sampled_params(trials: Sequence[FrozenTrial]) -> set[str]:
    """Params with more than one possible value (a fixed param has no importance)."""
    return {name for t in trials for name, d in t.distributions.items() if not d.single()}


def _get_importance_info(studies: Mapping[str, optuna.Study], evaluator) -> _ImportanceInfo:
    evaluator = evaluator or optuna.importance.PedAnovaImportanceEvaluator()
    cells = sorted(studies)
    rows: list[dict[str, float]] = []
    columns: set[str] = set()
    too_few = {}
    for cell in cells:
        study = studies[cell]
        columns |= _sampled_params(study.get_trials(deepcopy=False))
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < MIN_COMPLETE_FOR_IMPORTANCE:
            too_few[cell] = len(complete)
            rows.append({})
            continue
        params = sorted(_sampled_params(complete))
        rows.append(
            optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
        )
    frame = pd.DataFrame(rows, index=cells, columns=sorted(columns), dtype=float)
    order = frame.mean().fillna(-1.0).sort_values(ascending=False, kind="stable").index
    frame = frame[order]
    name = type(evaluator).__name__.removesuffix("ImportanceEvaluator")
    return _ImportanceInfo(cells, list(order), frame.to_numpy().tolist(), too_few, name)


def param_importance(studies: Mapping[str, optuna.Study], *, evaluator=None) -> go.Figure:
    """Hyperparameter importance per cell: a heatmap of cells (rows) x params (columns).

    Each cell's study is evaluated on its own COMPLETE trials with ``optuna.importance``
    (importances of a row sum to 1). Params fixed to one value are left out. A cell with fewer
    than ``MIN_COMPLETE_FOR_IMPORTANCE`` COMPLETE trials gets an empty row, named in the
    figure's subtitle.

    Args:
        studies: cell (``"loss:optimizer"``) -> that cell's single-objective Optuna study.
        evaluator: an ``optuna.importance`` evaluator; default
            ``PedAnovaImportanceEvaluator()`` (no scikit-learn needed).

    Returns:
        One ``go.Heatmap`` named ``"importance"``: ``y`` = cells (sorted, first on top), ``x``
        = params (highest mean importance first), ``z`` = importances (NaN: not evaluated,
        or the param is not sampled in that cell), ``text`` = ``z`` to 2 decimals (``""`` for
        NaN). Without any sampled param, a figure without traces whose annotation says so.
    """
    info = _get_importance_info(studies, evaluator)
    title = f"hyperparameter importance per cell ({info.evaluator}, COMPLETE trials)"
    if not info.params:
        return _empty_figure("no sampled parameter in any study", title)
    fig = go.Figure(
        go.Heatmap(
            z=info.z,
            x=info.params,
            y=info.cells,
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            name="importance",
            text=[["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in info.z],
            texttemplate="%{text}",
            colorbar={"title": {"text": "importance"}},
            hoverongaps=False,
        )
    )
    subtitle = ""
    if info.too_few:
        listed = ", ".join(f"{c} ({n})" for c, n in info.too_few.items())
        subtitle = (
            f"empty rows: fewer than {MIN_COMPLETE_FOR_IMPORTANCE} COMPLETE trials in {listed}"
        )
    fig.update_layout(
        title={"text": title, "subtitle": {"text": subtitle}},
        xaxis_title="param",
        yaxis={"title": "cell", "autorange": "reversed"},
        height=200 + 24 * len(info.cells),
    )
    return fig
