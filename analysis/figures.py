"""Comparison figures for the report: pure functions from tidy tables to plotly figures.

Every public plot has two steps, as in ``optuna.visualization``: ``_get_<plot>_info(...)``
extracts plain numbers into a ``NamedTuple`` and the public function turns that into a
``go.Figure``. Nothing here writes files or calls ``show()``; the report step saves figures.

Tables (see DESIGN.md, "Run directory"):

- confirmation table: one row per cell x seed x epoch with columns ``cell`` ("loss:optimizer"),
  ``loss``, ``optimizer``, ``seed``, ``epoch`` and metric columns (``r_mean``, ``zs_top1``, ...);
- final table: the same columns, one row per cell x seed (``final_rows`` makes it from the
  confirmation table; the figures below call it themselves, so either table may be passed);
- pairwise table: ``method_a, method_b, p_adjusted, effect_size, ci_low, ci_high`` where
  ``effect_size`` is the paired difference ``method_a - method_b`` and ``[ci_low, ci_high]`` its
  confidence interval (the ``.pairwise`` frame of ``analysis.compare_methods``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go

__all__ = [
    "cell_heatmap",
    "critical_difference",
    "final_rows",
    "forest",
    "learning_curves",
    "pvalue_heatmap",
    "seed_strip",
]


def final_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The last reported epoch of every (cell, seed); a table without ``epoch`` is returned as is.

    Args:
        table: confirmation table (``cell, seed, epoch, <metrics>``) or an already final one.

    Returns:
        One row per (cell, seed), index reset.
    """
    if "epoch" not in table.columns or table.empty:
        return table.reset_index(drop=True)
    last = table.groupby(["cell", "seed"])["epoch"].transform("max")
    return table[table["epoch"] == last].reset_index(drop=True)


def _cell_order(table: pd.DataFrame) -> list[str]:
    """Cells ordered by (loss, optimizer) when those columns exist, else by name."""
    if {"loss", "optimizer"} <= set(table.columns):
        pairs = table[["cell", "loss", "optimizer"]].drop_duplicates("cell")
        return pairs.sort_values(["loss", "optimizer"])["cell"].tolist()
    return sorted(table["cell"].unique().tolist())


def require_columns(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """ValueError naming the missing columns of ``table`` (``what`` names the table)."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; has {list(table.columns)}")


# --------------------------------------------------------------------------------- seed strip


class _SeedStripInfo(NamedTuple):
    cells: list[str]
    values: dict[str, list[float]]  # cell -> final values over its seeds
    seeds: dict[object, list[float | None]]  # seed -> value per cell (None where missing)


def _get_seed_strip_info(final: pd.DataFrame, metric: str) -> _SeedStripInfo:
    require_columns(final, ["cell", "seed", metric], "seed_strip")
    rows = final_rows(final)
    cells = _cell_order(rows)
    values = {c: rows.loc[rows["cell"] == c, metric].astype(float).tolist() for c in cells}
    wide = rows.pivot_table(index="seed", columns="cell", values=metric, aggfunc="mean")
    wide = wide.reindex(columns=cells)
    seeds = {
        seed: [None if pd.isna(v) else float(v) for v in wide.loc[seed].tolist()]
        for seed in wide.index
    }
    return _SeedStripInfo(cells, values, seeds)


def seed_strip(final: pd.DataFrame, metric: str, *, title: str | None = None) -> go.Figure:
    """Box of the final-epoch value per cell, with one line per seed joining it across cells.

    The seed lines show the pairing (common random numbers): parallel lines mean the cell
    effect is consistent across seeds even when the boxes overlap.

    Args:
        final: final or confirmation table with columns ``cell, seed, <metric>`` (and ``epoch``,
            ``loss``, ``optimizer`` when present: last epoch kept, cells ordered by them).
        metric: metric column to plot.
        title: figure title; defaults to the metric name.

    Returns:
        One ``go.Box`` per cell (named by the cell), then one ``go.Scatter`` per seed
        (named ``"seed <s>"``, ``y`` per cell, ``None`` where that seed is missing).
    """
    info = _get_seed_strip_info(final, metric)
    fig = go.Figure()
    for cell in info.cells:
        fig.add_trace(
            go.Box(
                x=[cell] * len(info.values[cell]),
                y=info.values[cell],
                name=cell,
                boxpoints=False,
                showlegend=False,
                marker_color="lightgray",
            )
        )
    for seed, ys in info.seeds.items():
        fig.add_trace(
            go.Scatter(
                x=info.cells,
                y=ys,
                name=f"seed {seed}",
                mode="lines+markers",
                line={"width": 1},
                opacity=0.7,
                connectgaps=False,
            )
        )
    fig.update_layout(
        title=title or f"{metric}: final epoch per seed",
        xaxis_title="cell (loss:optimizer)",
        yaxis_title=metric,
        legend_title="seed",
    )
    return fig


# ------------------------------------------------------------------------------------- forest


class _ForestInfo(NamedTuple):
    contenders: list[str]
    effect: list[float]  # contender - baseline
    ci_low: list[float]
    ci_high: list[float]
    p_adjusted: list[float]


def _get_forest_info(pairwise: pd.DataFrame, baseline: str) -> _ForestInfo:
    require_columns(
        pairwise,
        ["method_a", "method_b", "p_adjusted", "effect_size", "ci_low", "ci_high"],
        "forest",
    )
    rows = []
    for r in pairwise.itertuples(index=False):
        if r.method_b == baseline and r.method_a != baseline:
            rows.append((r.method_a, r.effect_size, r.ci_low, r.ci_high, r.p_adjusted))
        elif r.method_a == baseline and r.method_b != baseline:
            # flip so that every difference reads "contender - baseline"
            rows.append((r.method_b, -r.effect_size, -r.ci_high, -r.ci_low, r.p_adjusted))
    if not rows:
        raise ValueError(f"forest: no pair involves the baseline {baseline!r}")
    rows.sort(key=lambda r: r[1])
    names, eff, lo, hi, p = (list(col) for col in zip(*rows, strict=True))
    return _ForestInfo(
        names,
        [float(v) for v in eff],
        [float(v) for v in lo],
        [float(v) for v in hi],
        [float(v) for v in p],
    )


def forest(
    pairwise: pd.DataFrame,
    *,
    baseline: str,
    alpha: float = 0.05,
    rope: float | None = None,
    metric: str | None = None,
) -> go.Figure:
    """Forest plot: paired difference of every contender against the baseline, with its CI.

    Args:
        pairwise: table with ``method_a, method_b, p_adjusted, effect_size, ci_low, ci_high``,
            ``effect_size`` = ``method_a - method_b``. Pairs with the baseline as ``method_a``
            are flipped so every row reads ``contender - baseline``; other pairs are ignored.
        baseline: the reference method.
        alpha: markers of rows with ``p_adjusted < alpha`` are filled, others hollow.
        rope: half-width of a region of practical equivalence, shaded around zero.
        metric: metric name for the axis title.

    Returns:
        One horizontal ``go.Scatter`` (``x`` = differences, ``y`` = contenders, sorted by
        difference) whose ``error_x`` is ``array = ci_high - effect``,
        ``arrayminus = effect - ci_low``; a vertical line at zero.
    """
    info = _get_forest_info(pairwise, baseline)
    eff = np.asarray(info.effect)
    significant = [p < alpha for p in info.p_adjusted]
    fig = go.Figure(
        go.Scatter(
            x=info.effect,
            y=info.contenders,
            mode="markers",
            name=f"difference vs {baseline}",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (np.asarray(info.ci_high) - eff).tolist(),
                "arrayminus": (eff - np.asarray(info.ci_low)).tolist(),
            },
            marker={
                "size": 10,
                "symbol": ["circle" if s else "circle-open" for s in significant],
            },
            customdata=np.column_stack([info.ci_low, info.ci_high, info.p_adjusted]),
            hovertemplate=(
                "%{y}: %{x:.3g} [%{customdata[0]:.3g}, %{customdata[1]:.3g}]"
                "<br>p_adj = %{customdata[2]:.3g}<extra></extra>"
            ),
        )
    )
    fig.add_vline(x=0, line_dash="dash", line_color="black")
    if rope is not None:
        fig.add_vrect(x0=-rope, x1=rope, fillcolor="gray", opacity=0.15, line_width=0)
    label = f"{metric}: " if metric else ""
    fig.update_layout(
        title=f"{label}paired difference vs {baseline} (filled: p_adj < {alpha:g})",
        xaxis_title=f"{metric or 'metric'} difference (contender - {baseline})",
        yaxis_title="contender",
    )
    return fig


# -------------------------------------------------------------------------------- cell heatmap


class _CellHeatmapInfo(NamedTuple):
    losses: list[str]
    optimizers: list[str]
    z: list[list[float]]  # [loss][optimizer], NaN where the cell was not run
    text: list[list[str]]


def _get_cell_heatmap_info(final: pd.DataFrame, metric: str) -> _CellHeatmapInfo:
    require_columns(final, ["cell", "loss", "optimizer", metric], "cell_heatmap")
    rows = final_rows(final)
    means = rows.pivot_table(index="loss", columns="optimizer", values=metric, aggfunc="mean")
    means = means.reindex(
        index=sorted(rows["loss"].unique()), columns=sorted(rows["optimizer"].unique())
    )
    z = means.to_numpy(dtype=float)
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in z]
    return _CellHeatmapInfo(
        list(means.index), list(means.columns), [list(map(float, row)) for row in z], text
    )


def cell_heatmap(final: pd.DataFrame, metric: str, *, colorscale: str = "Viridis") -> go.Figure:
    """Loss x optimizer heatmap of the mean final value over seeds, annotated with the mean.

    Args:
        final: final or confirmation table with ``cell, loss, optimizer, <metric>`` (and
            ``seed``, ``epoch``: last epoch kept).
        metric: metric column.
        colorscale: plotly colorscale name.

    Returns:
        One ``go.Heatmap``: ``y`` = losses, ``x`` = optimizers (sorted), ``z`` = means with NaN
        (drawn blank) where a cell was not run, ``text`` = the formatted means.
    """
    info = _get_cell_heatmap_info(final, metric)
    fig = go.Figure(
        go.Heatmap(
            z=info.z,
            x=info.optimizers,
            y=info.losses,
            text=info.text,
            texttemplate="%{text}",
            colorscale=colorscale,
            colorbar={"title": {"text": metric}},
            hoverongaps=False,
            name=metric,
        )
    )
    fig.update_layout(
        title=f"{metric}: mean over seeds", xaxis_title="optimizer", yaxis_title="loss"
    )
    return fig


# ----------------------------------------------------------------------- critical difference


class _CDInfo(NamedTuple):
    methods: list[str]  # sorted by average rank, best (lowest) first
    ranks: list[float]
    left: list[bool]  # label on the left side
    label_y: list[float]  # depth of each connector below the axis
    cliques: list[tuple[float, float, float]]  # (rank_low, rank_high, y) per drawn clique
    k: int


def _get_cd_info(avg_ranks: Mapping[str, float], cliques: Sequence[set[str]]) -> _CDInfo:
    if not avg_ranks:
        raise ValueError("critical_difference: no methods")
    unknown = set().union(*cliques) - set(avg_ranks) if cliques else set()
    if unknown:
        raise ValueError(f"critical_difference: cliques name unknown methods {sorted(unknown)}")
    order = sorted(avg_ranks, key=lambda m: (avg_ranks[m], m))
    ranks = [float(avg_ranks[m]) for m in order]
    k = len(order)
    n_left = (k + 1) // 2
    left = [i < n_left for i in range(k)]
    # connectors: the outermost label is the one nearest the axis end
    label_y = [-(1.0 + 0.5 * i) if i < n_left else -(1.0 + 0.5 * (k - 1 - i)) for i in range(k)]
    spans = []
    seen = set()
    for clique in cliques:
        if len(clique) < 2:
            continue
        span = (min(avg_ranks[m] for m in clique), max(avg_ranks[m] for m in clique))
        if span in seen:
            continue
        seen.add(span)
        spans.append(span)
    spans.sort()
    drawn = [(float(lo), float(hi), -0.25 - 0.2 * j) for j, (lo, hi) in enumerate(spans)]
    return _CDInfo(order, ranks, left, label_y, drawn, k)


def critical_difference(
    avg_ranks: Mapping[str, float],
    cliques: Sequence[set[str]],
    *,
    cd: float | None = None,
    title: str = "Critical difference diagram",
) -> go.Figure:
    """Critical difference diagram (Demšar 2006) drawn in plotly.

    Args:
        avg_ranks: method -> average rank over seeds/blocks (1 = best).
        cliques: groups of methods that are not significantly different from each other
            (e.g. from Wilcoxon-Holm or Nemenyi); groups of fewer than two are not drawn.
        cd: critical difference (Nemenyi); drawn as a bar above the axis when given.
        title: figure title.

    Returns:
        A figure whose top x axis is the rank (1 .. k). Traces: one ``go.Scatter`` per method
        (named by the method; a connector from its rank on the axis to its label, left side
        for the better half), one thick line per clique (named ``"clique <i>"``, ``x`` = lowest
        and highest rank of its members) and, with ``cd``, a trace named ``"CD"``.
    """
    info = _get_cd_info(avg_ranks, cliques)
    x_left, x_right = 0.0, info.k + 1.0  # label ends, outside the rank axis
    fig = go.Figure()
    for method, rank, is_left, y in zip(
        info.methods, info.ranks, info.left, info.label_y, strict=True
    ):
        x_end = x_left if is_left else x_right
        fig.add_trace(
            go.Scatter(
                x=[rank, rank, x_end],
                y=[0.0, y, y],
                mode="lines+text",
                text=["", "", f"{method} ({rank:.2f})"],
                textposition="middle left" if is_left else "middle right",
                cliponaxis=False,
                line={"color": "black", "width": 1},
                name=method,
                showlegend=False,
                hovertemplate=f"{method}: average rank {rank:.3f}<extra></extra>",
            )
        )
    for i, (lo, hi, y) in enumerate(info.cliques):
        fig.add_trace(
            go.Scatter(
                x=[lo, hi],
                y=[y, y],
                mode="lines",
                line={"color": "black", "width": 6},
                name=f"clique {i}",
                showlegend=False,
                hoverinfo="skip",
            )
        )
    if cd is not None:
        fig.add_trace(
            go.Scatter(
                x=[1.0, 1.0 + cd],
                y=[0.6, 0.6],
                mode="lines+text",
                text=["", f"CD = {cd:.2f}"],
                textposition="middle right",
                line={"color": "firebrick", "width": 3},
                name="CD",
                showlegend=False,
            )
        )
    depth = min(info.label_y) - 0.5
    fig.update_xaxes(
        side="top",
        range=[x_left, x_right],
        tickvals=list(range(1, info.k + 1)),
        showgrid=False,
        zeroline=False,
        showline=True,
        ticks="outside",
        anchor="free",
        position=1.0,
        title_text="average rank (1 = best)",
    )
    fig.update_yaxes(visible=False, range=[depth, 1.0])
    fig.add_hline(y=0, line_color="black", line_width=1)
    # labels are drawn outside the rank axis (cliponaxis=False): leave room in the margins
    margin = 20 + 7 * max(len(f"{m} (0.00)") for m in info.methods)
    fig.update_layout(
        title=title,
        plot_bgcolor="white",
        height=200 + 30 * info.k,
        margin={"l": margin, "r": margin},
    )
    return fig


# ------------------------------------------------------------------------------ p-value matrix


class _PValueInfo(NamedTuple):
    methods: list[str]
    z: list[list[float]]  # symmetric, NaN on the diagonal and for pairs not tested


def _get_pvalue_info(pairwise: pd.DataFrame, order: Sequence[str] | None) -> _PValueInfo:
    require_columns(pairwise, ["method_a", "method_b", "p_adjusted"], "pvalue_heatmap")
    names = sorted(set(pairwise["method_a"]) | set(pairwise["method_b"]))
    methods = list(order) if order is not None else names
    index = {m: i for i, m in enumerate(methods)}
    z = np.full((len(methods), len(methods)), np.nan)
    for a, b, p in pairwise[["method_a", "method_b", "p_adjusted"]].itertuples(index=False):
        if a in index and b in index and a != b:
            z[index[a], index[b]] = z[index[b], index[a]] = float(p)
    return _PValueInfo(methods, [list(map(float, row)) for row in z])


def pvalue_heatmap(
    pairwise: pd.DataFrame, *, order: Sequence[str] | None = None, alpha: float = 0.05
) -> go.Figure:
    """Symmetric matrix of adjusted p-values of every tested pair.

    Args:
        pairwise: table with ``method_a, method_b, p_adjusted``.
        order: methods in display order (default: sorted names).
        alpha: significance level, named in the title.

    Returns:
        One ``go.Heatmap`` with ``x`` = ``y`` = methods and ``z[i][j] = z[j][i]`` = adjusted p
        (NaN on the diagonal and for untested pairs), annotated with the values.
    """
    info = _get_pvalue_info(pairwise, order)
    text = [["" if np.isnan(v) else f"{v:.3g}" for v in row] for row in info.z]
    fig = go.Figure(
        go.Heatmap(
            z=info.z,
            x=info.methods,
            y=info.methods,
            text=text,
            texttemplate="%{text}",
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues_r",
            colorbar={"title": {"text": "p (adjusted)"}},
            hoverongaps=False,
            name="p_adjusted",
        )
    )
    fig.update_layout(title=f"adjusted p-values (significant below {alpha:g})")
    fig.update_yaxes(autorange="reversed")
    return fig


# ----------------------------------------------------------------------------- learning curves


class _CurveInfo(NamedTuple):
    cell: str
    epochs: list[float]
    median: list[float]
    q25: list[float]
    q75: list[float]


def _get_learning_curves_info(confirm: pd.DataFrame, metric: str) -> list[_CurveInfo]:
    require_columns(confirm, ["cell", "seed", "epoch", metric], "learning_curves")
    out = []
    for cell in _cell_order(confirm):
        rows = confirm[confirm["cell"] == cell]
        grouped = rows.groupby("epoch")[metric]
        stats = pd.DataFrame(
            {
                "median": grouped.median(),
                "q25": grouped.quantile(0.25),
                "q75": grouped.quantile(0.75),
            }
        ).sort_index()
        out.append(
            _CurveInfo(
                cell,
                stats.index.astype(float).tolist(),
                stats["median"].astype(float).tolist(),
                stats["q25"].astype(float).tolist(),
                stats["q75"].astype(float).tolist(),
            )
        )
    return out


def learning_curves(confirm: pd.DataFrame, metric: str) -> go.Figure:
    """Per cell, the median over seeds at every epoch with an inter-quartile band.

    Args:
        confirm: confirmation table with ``cell, seed, epoch, <metric>``.
        metric: metric column.

    Returns:
        Two traces per cell, in cell order: the band (``"<cell> IQR"``, a closed polygon: ``x``
        = epochs then epochs reversed, ``y`` = 75th percentile then 25th reversed; linear
        interpolation as ``numpy.percentile``), then the median line (named by the cell).
    """
    fig = go.Figure()
    palette = list(plotly.colors.qualitative.Plotly)
    for i, curve in enumerate(_get_learning_curves_info(confirm, metric)):
        color = palette[i % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=curve.epochs + curve.epochs[::-1],
                y=curve.q75 + curve.q25[::-1],
                fill="toself",
                fillcolor=color,
                opacity=0.2,
                line={"width": 0},
                name=f"{curve.cell} IQR",
                legendgroup=curve.cell,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=curve.epochs,
                y=curve.median,
                mode="lines+markers",
                line={"color": color},
                name=curve.cell,
                legendgroup=curve.cell,
            )
        )
    fig.update_layout(
        title=f"{metric}: median over seeds with IQR",
        xaxis_title="epoch",
        yaxis_title=metric,
        legend_title="cell",
    )
    return fig
