"""The comparison report: confirmation runs -> tests and effect sizes -> one HTML file.

Input tables: ``confirm`` (``confirm.parquet``: cell, loss, optimizer, seed, epoch, metrics)
and ``sweep`` (``trials.parquet``, see ``analysis.sweep_figures``), optionally the per-cell
Optuna studies for hyperparameter importance. The primary metric is tested with Holm's
correction; the other metrics are secondary, Benjamini–Hochberg corrected across all their
tests and labelled exploratory. Claims come from the confirmation runs only; the sweep appears
as diagnostics. The HTML embeds plotly.js once and works offline.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from plotly.subplots import make_subplots

from analysis.factor_tests import FactorFamily, factor_families
from analysis.factorial import InteractionTest, crossed_subset, factorial_interaction
from analysis.figures import (
    cell_heatmap,
    critical_difference,
    final_rows,
    forest,
    learning_curves,
    pvalue_heatmap,
    seed_strip,
)
from analysis.stats import TEST_NAMES, Comparison, adjust_secondary, compare_methods
from analysis.summary import ranked_table, summary_sentences
from analysis.sweep_figures import (
    MIN_COMPLETE_FOR_IMPORTANCE,
    optimization_history,
    parallel_coordinates,
    param_importance,
    rung_survival,
)

SECONDARY = ("txt_r1", "img_r1", "zs_top1", "zs_top5")
SWEEP_AXES = ("loss", "optimizer", "lr", "weight_decay")  # params every trial has


def confirmation_scores(confirm: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Tidy ``method, seed, metric, value`` rows of the final epoch of every (cell, seed)."""
    final = final_rows(confirm)
    return final.melt(
        id_vars=["cell", "seed"], value_vars=metrics, var_name="metric", value_name="value"
    ).rename(columns={"cell": "method"})


@dataclass
class ComparisonReport:
    """What ``build_report`` produced: the verdict, every test's numbers, the figures."""

    verdict: list[str]  # every family's reading, for the details and the dashboard
    primary: Comparison
    secondary: pd.DataFrame
    figures: dict[str, go.Figure] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    factors: pd.DataFrame = field(default_factory=pd.DataFrame)  # per-factor pairwise tests
    ranked: pd.DataFrame = field(default_factory=pd.DataFrame)  # analysis.summary.ranked_table
    summary: list[str] = field(default_factory=list)  # the quotable verdict, first screen


def average_ranks(scores: pd.DataFrame, metric: str, mode: str) -> pd.Series:
    """Mean over seeds of each method's rank within its seed (1 = best; ties share ranks)."""
    wide = scores[scores["metric"] == metric].pivot(index="seed", columns="method", values="value")
    return wide.rank(axis=1, ascending=mode == "min").mean().sort_values()


def cliques(ranks: pd.Series, pairwise: pd.DataFrame) -> list[set[str]]:
    """Maximal runs of methods, consecutive in rank order, with no significant pair among them
    (Holm-corrected pairwise verdicts), as drawn in a critical-difference diagram."""
    significant = {
        frozenset((row.method_a, row.method_b)) for row in pairwise.itertuples() if row.significant
    }
    order = list(ranks.index)
    runs: list[set[str]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and not any(
            frozenset((order[end + 1], other)) in significant for other in order[start : end + 1]
        ):
            end += 1
        run = set(order[start : end + 1])
        if len(run) > 1 and not any(run <= earlier for earlier in runs):
            runs.append(run)
    return runs


def _verdict(
    comparison: Comparison, means: pd.Series, mode: str, *, compared: str = "cells"
) -> list[str]:
    """Plain-words reading of one family of tests, with its numbers: the best mean, the
    omnibus test, then the best against every other method."""
    best = means.idxmax() if mode == "max" else means.idxmin()
    omnibus = comparison.omnibus
    lines = [
        f"Best mean {comparison.metric}: {best} ({means[best]:.2f}). "
        f"{TEST_NAMES[omnibus.test]} over {omnibus.n_methods} {compared} and "
        f"{omnibus.n_blocks} blocks: p = {omnibus.p_value:.3g}."
    ]
    rows = comparison.pairwise
    against_best = rows[(rows["method_a"] == best) | (rows["method_b"] == best)]
    for row in against_best.itertuples():
        other = row.method_b if row.method_a == best else row.method_a
        sign = 1 if row.method_a == best else -1
        verdict = "a significant difference" if row.significant else "no significant difference"
        lines.append(
            f"{best} vs {other}: {verdict} (mean paired difference {sign * row.effect_size:+.2f}, "
            f"95% CI [{min(sign * row.ci_low, sign * row.ci_high):+.2f}, "
            f"{max(sign * row.ci_low, sign * row.ci_high):+.2f}], Holm-adjusted "
            f"p = {row.p_adjusted:.3g}, A12 = {row.a12 if sign > 0 else 1 - row.a12:.2f})."
        )
    lines.extend(comparison.notes)
    return lines


def _factor_lines(families: list[FactorFamily], mode: str) -> list[str]:
    """The per-factor families, each line prefixed by the family it belongs to."""
    return [
        f"{family.label.capitalize()}: {line}"
        for family in families
        for line in _verdict(family.comparison, family.means, mode, compared=family.compared)
    ]


def _factor_table(families: list[FactorFamily]) -> pd.DataFrame:
    """Every pairwise test of the per-factor families, with the family named."""
    frames = [f.comparison.pairwise.assign(family=f.label) for f in families]
    if not frames:
        return pd.DataFrame()
    table = pd.concat(frames, ignore_index=True)
    return table[["family", *table.columns[:-1]]]


def _secondary(scores: pd.DataFrame, metrics: list[str], alpha: float) -> pd.DataFrame:
    """All pairwise tests of the secondary metrics, BH-adjusted together (exploratory)."""
    frames = []
    for metric in metrics:
        pairwise = compare_methods(scores, metric, alpha=alpha, rope=None).pairwise.copy()
        pairwise.insert(0, "metric", metric)
        frames.append(pairwise)
    table = pd.concat(frames, ignore_index=True)
    table["p_bh"] = adjust_secondary(table["p_value"].to_numpy())
    table["significant_bh"] = table["p_bh"] < alpha
    return table


def secondary_forest(secondary: pd.DataFrame, *, reference: str, alpha: float) -> go.Figure:
    """One forest panel per secondary metric (shared contender axis): paired differences
    against ``reference``, markers filled where the BH-adjusted p (``p_bh``) is below alpha.

    Returns one ``go.Scatter`` per metric, named by the metric (see ``figures.forest``).
    """
    metrics = list(dict.fromkeys(secondary["metric"]))
    fig = make_subplots(rows=1, cols=len(metrics), shared_yaxes=True, subplot_titles=metrics)
    for col, metric in enumerate(metrics, start=1):
        rows = secondary[secondary["metric"] == metric].assign(p_adjusted=lambda t: t["p_bh"])
        (trace,) = forest(rows, baseline=reference, alpha=alpha).data
        fig.add_trace(trace.update(name=metric), row=1, col=col)
        fig.add_vline(x=0, line_dash="dash", line_color="black", row=1, col=col)
    fig.update_layout(
        title=f"exploratory: paired difference vs {reference} (filled: BH-adjusted p < {alpha:g})",
        showlegend=False,
    )
    return fig


def _enough_for_importance(study: optuna.Study) -> bool:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return len(complete) >= MIN_COMPLETE_FOR_IMPORTANCE


def build_report(
    confirm: pd.DataFrame,
    sweep: pd.DataFrame,
    *,
    primary: str,
    mode: str,
    max_epochs: int,
    alpha: float = 0.05,
    baseline: str | None = None,
    studies: Mapping[str, optuna.Study] | None = None,
) -> ComparisonReport:
    """Run the tests and draw the figures of a report (no files written).

    ``studies`` (cell -> that cell's Optuna study) adds the per-cell hyperparameter importance
    figure when a cell has enough COMPLETE trials for it; otherwise the figure is left out.
    """
    secondary = [m for m in SECONDARY if m in confirm.columns and m != primary]
    scores = confirmation_scores(confirm, [primary, *secondary])
    comparison = compare_methods(scores, primary, alpha=alpha, mode=mode)
    ranked = ranked_table(scores, comparison)
    summary = summary_sentences(comparison, ranked)
    final = final_rows(confirm)
    crossed = crossed_subset(final)
    design = final if crossed.empty else crossed
    factorial = factorial_interaction(design.rename(columns={primary: "value"}))
    families = factor_families(crossed, primary, factorial, alpha=alpha, mode=mode)
    means = scores[scores["metric"] == primary].groupby("method")["value"].mean()
    secondary_table = _secondary(scores, secondary, alpha) if secondary else pd.DataFrame()
    ranks = average_ranks(scores, primary, mode)
    reference = baseline or (means.idxmax() if mode == "max" else means.idxmin())
    figures = {
        "Per-seed results (lines join a seed across cells)": seed_strip(final, primary),
        f"Paired differences against {reference}": forest(
            compare_methods(scores, primary, alpha=alpha, baseline=reference, rope=None).pairwise,
            baseline=reference,
            metric=primary,
        ),
    }
    if secondary:
        figures[
            f"Secondary metrics: paired differences against {reference} "
            "(exploratory, Benjamini–Hochberg)"
        ] = secondary_forest(secondary_table, reference=reference, alpha=alpha)
    figures |= {
        "Loss x optimizer means": cell_heatmap(final, primary),
        "Holm-adjusted p-values": pvalue_heatmap(comparison.pairwise),
        "Average ranks over seeds (bars join cells with no significant difference)": (
            critical_difference(ranks.to_dict(), cliques(ranks, comparison.pairwise))
        ),
        "Learning curves (median, inter-quartile band)": learning_curves(confirm, primary),
        "Sweep: optimisation history": optimization_history(sweep, primary, mode=mode),
        "Sweep: trials reaching each epoch (ASHA rungs)": rung_survival(
            sweep, max_epochs=max_epochs
        ),
        "Sweep: sampled hyperparameters (COMPLETE and PRUNED trials, last reported epoch)": (
            parallel_coordinates(
                sweep,
                primary,
                [p for p in SWEEP_AXES if p in sweep.columns],
                states=("COMPLETE", "PRUNED"),
            )
        ),
    }
    if studies is not None and any(map(_enough_for_importance, studies.values())):
        figures["Sweep: hyperparameter importance per cell"] = param_importance(studies)
    data = {
        "factorial": asdict(factorial),
        "factors": [
            {"factor": f.factor, "within": f.within, **f.comparison.to_dict()} for f in families
        ],
        "summary": summary,
        "ranked": ranked.to_dict(orient="records"),
        "primary": comparison.to_dict(),
        "secondary": json.loads(secondary_table.to_json(orient="records")),
        "means": means.to_dict(),
    }
    verdict = [
        _factorial_line(factorial, primary),
        *_factor_lines(families, mode),
        *_verdict(comparison, means, mode),
    ]
    return ComparisonReport(
        verdict,
        comparison,
        secondary_table,
        figures,
        data,
        factors=_factor_table(families),
        ranked=ranked,
        summary=summary,
    )


def _factorial_line(test: InteractionTest, metric: str) -> str:
    """The loss x optimizer interaction, stated before the per-cell comparisons."""
    if test.skipped:
        return f"Loss x optimizer interaction on {metric}: not tested ({test.skipped})."
    return (
        f"Loss x optimizer interaction on {metric} over the crossed cells "
        f"({', '.join(test.losses)}) x ({', '.join(test.optimizers)}) (mixed model, seed as "
        f"group, likelihood ratio chi2({test.df}) = {test.statistic:.2f}, p = {test.p_value:.3g})."
    )


def _bullets(lines) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(str(line))}</li>" for line in lines) + "</ul>"


def _number(value: Any) -> str:
    """Numbers to 3 significant digits; integers, text and booleans as they are."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, float | np.floating):
        return html.escape(str(value))
    return "" if np.isnan(value) else f"{value:.3g}"


def _table(frame: pd.DataFrame) -> str:
    """An HTML table with every float to 3 significant digits."""
    return frame.to_html(
        index=False, formatters=dict.fromkeys(frame.columns, _number), border=0, escape=False
    )


def _collapsible(summary: str, body: str) -> str:
    return f"<details><summary>{html.escape(summary)}</summary>{body}</details>"


SHORT_PAIRWISE = (
    "method_a",
    "method_b",
    "effect_size",
    "ci_low",
    "ci_high",
    "p_adjusted",
    "significant",
    "p_a_better",
    "p_equivalent",
    "p_b_better",
)


def _ranked_html(ranked: pd.DataFrame, metric: str) -> str:
    """The first-screen table: rank, cell, mean ± 95% CI, group, P(best)."""
    rows = "".join(
        f"<tr><td>{r.rank}</td><td>{html.escape(r.cell)}</td><td>{r.mean:.3g} "
        f"[{r.ci_low:.3g}, {r.ci_high:.3g}]</td><td>{html.escape(r.group)}</td>"
        f"<td>{_number(r.p_best)}</td></tr>"
        for r in ranked.itertuples()
    )
    head = (
        f"<tr><th>rank</th><th>cell</th><th>mean {html.escape(metric)} [95% CI]</th>"
        "<th>vs the best (Holm)</th><th>P(best)</th></tr>"
    )
    return f"<table class='ranked'>{head}{rows}</table>"


def render_html(report: ComparisonReport, *, title: str, setup: dict[str, Any]) -> str:
    """One self-contained HTML page (plotly.js embedded once, no network needed): the
    question, the ranked table and the verdict first; tests, figures and methods below."""
    primary = report.primary
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<p class='question'><b>Question:</b> which loss and which optimizer train the best "
        "image–text model on this data, and is the difference real?</p>",
        f"<h2>Ranking on {html.escape(primary.metric)}</h2>",
        _ranked_html(report.ranked, primary.metric),
        "<h2>Verdict</h2>",
        "".join(f"<p>{html.escape(line)}</p>" for line in report.summary),
        "<hr><h2>Details</h2>",
        "<h3>Setup</h3><ul>"
        + "".join(
            f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in setup.items()
        )
        + "</ul>",
        "<h3>Every family's reading</h3>" + _bullets(report.verdict),
        "<h3>Primary metric: pairwise tests of the cells</h3>"
        + _table(primary.pairwise[list(SHORT_PAIRWISE)])
        + _collapsible("every column", _table(primary.pairwise)),
    ]
    if not report.factors.empty:
        parts.append(
            "<h3>Primary metric: losses and optimizers (Holm within each family)</h3>"
            + _collapsible(f"{len(report.factors)} tests", _table(report.factors))
        )
    if not report.secondary.empty:
        parts.append(
            "<h3>Secondary metrics (exploratory, Benjamini–Hochberg)</h3>"
            + _collapsible(f"{len(report.secondary)} tests", _table(report.secondary))
        )
    for name, figure in report.figures.items():
        parts.append(f"<h3>{html.escape(name)}</h3>")
        parts.append(figure.to_html(full_html=False, include_plotlyjs=False))
    n_tests = primary.n_tests + len(report.factors) + len(report.secondary)
    parts.append(
        "<h3>Methods</h3><p>Only confirmation runs (best full-budget config of each cell, "
        "retrained with common seeds) enter the tests. Factorial: a linear mixed model of the "
        "primary metric on loss, optimizer and their interaction with the seed as group, the "
        "interaction tested by a likelihood ratio on the largest fully crossed part of the "
        "confirmed cells (at least 2 x 2); then, on that part, the "
        "losses and the optimizers are compared on their main effects (each level averaged "
        "over the other factor within a seed; the seeds are the blocks) when there is no "
        "interaction at alpha, else within each level of the other factor, each family with "
        "its own omnibus test and Holm correction. Test path, chosen by measurement as "
        "autorank does: Shapiro–Wilk on every pair's per-seed differences (Bonferroni); normal "
        "differences get paired t-tests, others Wilcoxon signed-rank tests; the omnibus is "
        "repeated-measures ANOVA when Bartlett's test finds the differences' variances equal, "
        "else Friedman's. Holm "
        f"correction over the {primary.n_tests} tests of the primary family "
        f"(alpha {primary.alpha}). Effect sizes: mean paired difference with a "
        "bootstrap confidence interval over seeds, Vargha–Delaney A12, Hedges' g. Bayesian: "
        f"baycomp's signed-rank test with a ROPE of ±{primary.rope:g} metric points, decision "
        f"at {1 - primary.alpha:g}; P(best) by the Bayesian bootstrap over seeds. Secondary "
        "metrics: the same tests with Benjamini–Hochberg correction across all of them, "
        f"exploratory. Tests run in all: {n_tests}.</p>"
    )
    script = f"<script>{plotly.offline.get_plotlyjs()}</script>"
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}table{font-size:12px}"
        "table.ranked{font-size:15px;border-collapse:collapse}"
        "table.ranked td,table.ranked th{padding:4px 10px;border-bottom:1px solid #ccc}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style>{script}</head><body>{''.join(parts)}</body></html>"
    )


def to_json(report: ComparisonReport) -> str:
    """Every test's numbers and the verdict as JSON."""
    return json.dumps({**report.data, "verdict": report.verdict}, indent=2, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
