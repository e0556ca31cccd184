"""Sweep diagnostics: pure functions from the sweep table (or the Optuna study) to figures.

Same two-step shape as ``analysis.figures``: ``_get_<plot>_info`` -> ``NamedTuple`` -> figure.
These figures describe the search, not the evidence: claims come from the confirmation phase.

Sweep table (``trials.parquet``, ``study.results.trials_table``): one row per trial x epoch with
columns ``trial_id``, ``number`` (Optuna trial number), ``state`` (``COMPLETE``, ``PRUNED``,
``FAIL``), ``epoch`` (1-based), metric columns and param columns (``loss``, ``optimizer``,
``lr``, ``weight_decay``, ``temperature``, ...).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
from optuna.trial import TrialState

from analysis.figures import require_columns

__all__ = [
    "final_per_trial",
    "optimization_history",
    "parallel_coordinates",
    "param_importance",
    "rung_survival",
]

_STATE_ORDER = ("COMPLETE", "PRUNED", "FAIL")


def final_per_trial(sweep: pd.DataFrame) -> pd.DataFrame:
    """The last reported epoch of every trial, one row per trial, sorted by ``number``.

    Args:
        sweep: sweep table with ``trial_id, number, state, epoch`` and metric/param columns.
    """
    require_columns(sweep, ["trial_id", "number", "state", "epoch"], "final_per_trial")
    if sweep.empty:
        return sweep.reset_index(drop=True)
    last = sweep.groupby("trial_id")["epoch"].transform("max")
    rows = sweep[sweep["epoch"] == last].drop_duplicates("trial_id", keep="last")
    return rows.sort_values("number", kind="stable").reset_index(drop=True)


def _empty_figure(message: str, title: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title)
    return fig


# ------------------------------------------------------------------------ optimization history


class _HistoryInfo(NamedTuple):
    points: dict[str, tuple[list[int], list[float]]]  # state -> (numbers, final values)
    best_numbers: list[int]  # COMPLETE trials, by number
    best_values: list[float]  # best so far over COMPLETE trials


def _get_history_info(sweep: pd.DataFrame, metric: str, mode: str) -> _HistoryInfo:
    if mode not in ("max", "min"):
        raise ValueError(f"optimization_history: mode must be 'max' or 'min', got {mode!r}")
    require_columns(sweep, ["trial_id", "number", "state", "epoch", metric], "optimization_history")
    final = final_per_trial(sweep)
    final = final[np.isfinite(final[metric].astype(float))]
    states = [s for s in _STATE_ORDER if s in set(final["state"])]
    states += sorted(set(final["state"]) - set(states))
    points = {}
    for state in states:
        rows = final[final["state"] == state]
        points[state] = (rows["number"].astype(int).tolist(), rows[metric].astype(float).tolist())
    complete = final[final["state"] == "COMPLETE"]
    values = complete[metric].astype(float)
    best = values.cummax() if mode == "max" else values.cummin()
    return _HistoryInfo(points, complete["number"].astype(int).tolist(), best.tolist())


def optimization_history(sweep: pd.DataFrame, metric: str, *, mode: str) -> go.Figure:
    """Final value of every trial by trial number, and the best so far over COMPLETE trials.

    PRUNED trials are drawn (their value is a partial-budget one) but never count as best.

    Args:
        sweep: sweep table (``trial_id, number, state, epoch, <metric>``).
        metric: metric column.
        mode: ``"max"`` or ``"min"``, the direction of the study.

    Returns:
        One marker ``go.Scatter`` per state present (named by the state: COMPLETE, PRUNED,
        FAIL; ``x`` = numbers, ``y`` = last reported value; NaN values dropped), then a line
        named ``"best so far"`` over COMPLETE trials (``x`` = their numbers).
    """
    info = _get_history_info(sweep, metric, mode)
    symbols = {"COMPLETE": "circle", "PRUNED": "x", "FAIL": "triangle-down"}
    fig = go.Figure()
    for state, (numbers, values) in info.points.items():
        fig.add_trace(
            go.Scatter(
                x=numbers,
                y=values,
                mode="markers",
                name=state,
                marker={"symbol": symbols.get(state, "circle"), "size": 8},
                opacity=1.0 if state == "COMPLETE" else 0.6,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=info.best_numbers,
            y=info.best_values,
            mode="lines",
            name="best so far",
            line={"shape": "hv", "color": "firebrick"},
        )
    )
    fig.update_layout(
        title=f"optimization history ({metric}, {mode})",
        xaxis_title="trial number",
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
    require_columns(sweep, ["trial_id", "number", "state", "epoch", metric, *params], "parallel")
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
        sweep: sweep table (``trial_id, number, state, epoch, <metric>, <params>``).
        metric: metric column, the last axis and the line colour.
        params: param columns, in axis order.
        states: trial states drawn; default COMPLETE only, since a PRUNED trial's value is a
            partial-budget one (pass ``("COMPLETE", "PRUNED")`` to see where ASHA cut).

    Returns:
        One ``go.Parcoords`` with ``len(params) + 1`` dimensions, one line per kept trial.
    """
    info = _get_parallel_info(sweep, metric, params, states)
    dimensions = []
    for d in info.dimensions:
        dim = {"label": d.label, "values": d.values}
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
    params: list[str]  # most important first
    importances: list[float]
    n_complete: int


def _get_importance_info(study: optuna.Study, evaluator) -> _ImportanceInfo:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return _ImportanceInfo([], [], len(complete))
    importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    return _ImportanceInfo(
        list(importances), [float(v) for v in importances.values()], len(complete)
    )


def param_importance(study: optuna.Study, *, evaluator=None) -> go.Figure:
    """Hyperparameter importances of the study's COMPLETE trials (horizontal bars).

    Args:
        study: a single-objective Optuna study.
        evaluator: an ``optuna.importance`` evaluator; default that of
            ``optuna.importance.get_param_importances`` (no scikit-learn needed).

    Returns:
        One ``go.Bar`` named ``"importance"`` (``y`` = params, most important on top, ``x`` =
        importances summing to 1); with fewer than two COMPLETE trials, or no param common to
        them, a figure without traces whose annotation says why.
    """
    title = "hyperparameter importance (COMPLETE trials)"
    info = _get_importance_info(study, evaluator)
    if info.n_complete < 2:
        return _empty_figure(
            f"importance needs at least 2 COMPLETE trials; the study has {info.n_complete}",
            title,
        )
    if not info.params:
        return _empty_figure("no parameter is common to all COMPLETE trials", title)
    fig = go.Figure(
        go.Bar(
            x=info.importances[::-1],
            y=info.params[::-1],
            orientation="h",
            name="importance",
            text=[f"{v:.2f}" for v in info.importances[::-1]],
            textposition="auto",
        )
    )
    fig.update_layout(
        title=f"{title}, n = {info.n_complete}", xaxis_title="importance", yaxis_title="param"
    )
    return fig
