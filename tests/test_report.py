"""The report: a planted difference between cells is stated in the verdict with its numbers,
report.json holds every test, and the HTML is one self-contained page (plotly.js once)."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from analysis.comparison_report import (
    average_ranks,
    build_report,
    cliques,
    confirmation_scores,
    render_html,
    secondary_forest,
    to_json,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

CELLS = ("clip:adamw", "sogclr:adamw", "sogclr:sgd_nesterov")
SHIFT = {"clip:adamw": 0.0, "sogclr:adamw": 5.0, "sogclr:sgd_nesterov": -20.0}


def confirm_table(seeds: int = 10) -> pd.DataFrame:
    """Three cells x seeds x 2 epochs; sogclr:adamw is planted 5 points above clip:adamw."""
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 3, seeds)
    rows = []
    for cell in CELLS:
        loss, optimizer = cell.split(":")
        for seed in range(seeds):
            for epoch in (1, 2):
                value = 50 + SHIFT[cell] + seed_effect[seed] + rng.normal(0, 0.5) + 10 * epoch
                rows.append(
                    {
                        "cell": cell,
                        "loss": loss,
                        "optimizer": optimizer,
                        "seed": seed,
                        "epoch": epoch,
                        "r_mean": value,
                        "zs_top1": value / 2,
                        "txt_r1": value / 3,
                    }
                )
    return pd.DataFrame(rows)


def sweep_table() -> pd.DataFrame:
    """Two cells, each its own study with trial numbers 0..2 (COMPLETE, PRUNED, COMPLETE) and
    a 2-epoch budget; r_mean = 10 * number + epoch (+ 100 in sogclr:adamw)."""
    rows = []
    for offset, cell in ((0, "clip:adamw"), (100, "sogclr:adamw")):
        loss, optimizer = cell.split(":")
        for n, (state, epochs) in enumerate([("COMPLETE", 2), ("PRUNED", 1), ("COMPLETE", 2)]):
            for e in range(1, epochs + 1):
                rows.append(
                    {
                        "trial_id": f"{cell}/{n}",
                        "cell": cell,
                        "number": n,
                        "state": state,
                        "epoch": e,
                        "r_mean": offset + 10.0 * n + e,
                        "loss": loss,
                        "optimizer": optimizer,
                        "lr": 10.0 ** -(n + 2),
                        "weight_decay": 0.01 * (n + 1),
                        "gamma": 0.9 if loss == "sogclr" else np.nan,
                    }
                )
    return pd.DataFrame(rows)


def cell_study(n_complete: int) -> optuna.Study:
    """A cell's study: ``n_complete`` COMPLETE trials whose value follows lr only."""
    study = optuna.create_study(direction="maximize")
    distributions = {
        "lr": FloatDistribution(1e-5, 1e-1, log=True),
        "weight_decay": FloatDistribution(1e-4, 0.3, log=True),
    }
    rng = np.random.default_rng(n_complete)
    for _ in range(n_complete):
        lr, wd = 10 ** rng.uniform(-5, -1), rng.uniform(1e-3, 0.3)
        study.add_trial(
            create_trial(
                params={"lr": float(lr), "weight_decay": float(wd)},
                distributions=distributions,
                value=-((np.log10(lr) + 3) ** 2),
            )
        )
    return study


IMPORTANCE = "Sweep: hyperparameter importance per cell"
PARALLEL = "Sweep: sampled hyperparameters (COMPLETE and PRUNED trials, last reported epoch)"
SECONDARY_FOREST = (
    "Secondary metrics: paired differences against sogclr:adamw (exploratory, Benjamini–Hochberg)"
)


@pytest.fixture(scope="module")
def report():
    return build_report(confirm_table(), sweep_table(), primary="r_mean", mode="max", max_epochs=2)


@pytest.fixture(scope="module")
def report_with_studies():
    studies = {"clip:adamw": cell_study(20), "sogclr:adamw": cell_study(1)}
    return build_report(
        confirm_table(),
        sweep_table(),
        primary="r_mean",
        mode="max",
        max_epochs=2,
        studies=studies,
    )


def test_scores_use_the_final_epoch_of_each_seed():
    scores = confirmation_scores(confirm_table(seeds=3), ["r_mean"])
    assert len(scores) == 3 * 3
    table = confirm_table(seeds=3)
    final = table[table["epoch"] == 2].set_index(["cell", "seed"])["r_mean"]
    for row in scores.itertuples():
        assert row.value == final[(row.method, row.seed)]


def test_verdict_names_the_best_cell_and_the_planted_difference(report):
    assert report.verdict[0].startswith("Loss x optimizer interaction on r_mean: not tested")
    assert "incomplete design: 3 of 2 x 2" in report.verdict[0]
    assert report.verdict[1].startswith("Best mean r_mean: sogclr:adamw")
    versus_clip = next(line for line in report.verdict if "vs clip:adamw" in line)
    assert "a significant difference" in versus_clip
    difference = float(versus_clip.split("mean paired difference ")[1].split(",")[0])
    assert difference == pytest.approx(5.0, abs=0.6)


def test_json_holds_every_test(report):
    data = json.loads(to_json(report))
    assert data["primary"]["n_tests"] == 3
    assert data["primary"]["omnibus"]["test"] == data["primary"]["test_choice"]["omnibus_test"]
    assert len(data["secondary"]) == 2 * 3  # zs_top1 and txt_r1, three pairs each
    assert all(0 <= row["p_bh"] <= 1 for row in data["secondary"])
    assert data["verdict"] == report.verdict


def test_html_is_self_contained_with_every_figure(report):
    page = render_html(report, title="t", setup={"cells": ", ".join(CELLS)})
    assert page.count("<script>/**\n* plotly.js") == 1  # plotly.js embedded once
    assert "<script src=" not in page  # nothing loaded from the network
    assert page.count('class="plotly-graph-div"') == len(report.figures)
    for section in ("Question", "Setup", "Verdict", "Methods", "exploratory"):
        assert section in page


def test_ranks_and_cliques_follow_the_planted_order(report):
    scores = confirmation_scores(confirm_table(), ["r_mean"])
    ranks = average_ranks(scores, "r_mean", "max")
    assert list(ranks.index) == ["sogclr:adamw", "clip:adamw", "sogclr:sgd_nesterov"]
    assert ranks.iloc[0] == 1.0 and ranks.iloc[-1] == 3.0
    # every pair differs significantly here, so no two cells share a clique
    assert cliques(ranks, report.primary.pairwise) == []
    pairwise = report.primary.pairwise.assign(significant=False)
    assert cliques(ranks, pairwise) == [set(ranks.index)]


def test_sweep_panels_without_studies(report):
    assert IMPORTANCE not in report.figures
    history = report.figures["Sweep: optimisation history"]
    assert [t.name for t in history.data] == ["COMPLETE", "PRUNED", "clip:adamw", "sogclr:adamw"]
    assert list(history.data[2].x) == [0, 2] and list(history.data[2].y) == [2.0, 22.0]
    assert list(history.data[3].y) == [102.0, 122.0]
    (par,) = report.figures[PARALLEL].data
    labels = ["loss", "optimizer", "log10 lr", "weight_decay", "r_mean"]
    assert [d.label for d in par.dimensions] == labels
    # every trial of both cells (numbers repeat), at its last epoch
    assert list(par.dimensions[-1].values) == [2.0, 11.0, 22.0, 102.0, 111.0, 122.0]
    assert list(par.line.color) == list(par.dimensions[-1].values)
    assert np.allclose(par.dimensions[2].values, [-2, -3, -4] * 2)


def test_importance_heatmap_with_studies(report, report_with_studies):
    figures = report_with_studies.figures
    assert list(figures) == [*report.figures, IMPORTANCE]
    (heat,) = figures[IMPORTANCE].data
    assert list(heat.y) == ["clip:adamw", "sogclr:adamw"]
    assert list(heat.x) == ["lr", "weight_decay"]
    clip, sogclr = (np.asarray(row, dtype=float) for row in heat.z)
    assert np.isclose(clip.sum(), 1.0) and clip[0] > clip[1]
    assert np.isnan(sogclr).all()  # one COMPLETE trial: empty row and a note
    assert "sogclr:adamw (1)" in figures[IMPORTANCE].layout.title.subtitle.text
    page = render_html(report_with_studies, title="t", setup={})
    assert page.count('class="plotly-graph-div"') == len(figures)


def test_secondary_forest_in_the_report(report):
    fig = report.figures[SECONDARY_FOREST]
    assert [t.name for t in fig.data] == ["txt_r1", "zs_top1"]
    table = report.secondary
    scale = {"txt_r1": 1 / 3, "zs_top1": 1 / 2}  # secondary = r_mean x scale
    for trace in fig.data:
        assert sorted(trace.y) == ["clip:adamw", "sogclr:sgd_nesterov"]
        rows = table[table["metric"] == trace.name].set_index(["method_a", "method_b"])
        pair = ("clip:adamw", "sogclr:adamw")
        expected = (
            rows.loc[pair, "effect_size"]
            if pair in rows.index
            else -rows.loc[pair[::-1], "effect_size"]
        )
        x = trace.x[list(trace.y).index("clip:adamw")]  # clip:adamw - reference
        assert x == pytest.approx(expected)
        assert x == pytest.approx(-5.0 * scale[trace.name], abs=0.3)


def test_secondary_forest_uses_the_bh_adjusted_p():
    table = pd.DataFrame(
        {
            "metric": ["m1", "m1", "m1", "m2"],
            "method_a": ["ref", "a", "b", "a"],
            "method_b": ["a", "b", "ref", "ref"],
            "effect_size": [2.0, 9.0, 1.0, -1.0],
            "ci_low": [1.0, 8.0, 0.5, -1.5],
            "ci_high": [3.0, 10.0, 1.5, -0.5],
            "p_adjusted": [0.5, 0.5, 0.5, 0.5],  # Holm within a metric: not what is drawn
            "p_bh": [0.01, 0.01, 0.2, 0.04],
        }
    )
    fig = secondary_forest(table, reference="ref", alpha=0.05)
    assert [t.name for t in fig.data] == ["m1", "m2"]
    m1, m2 = fig.data
    assert list(m1.y) == ["a", "b"] and list(m1.x) == [-2.0, 1.0]  # contender - ref
    assert list(m1.marker.symbol) == ["circle", "circle-open"]
    assert list(m2.y) == ["a"] and list(m2.x) == [-1.0] and list(m2.marker.symbol) == ["circle"]
    assert m1.xaxis == "x" and m2.xaxis == "x2" and m2.yaxis == "y2"
    assert "exploratory" in fig.layout.title.text and "BH-adjusted" in fig.layout.title.text


def test_the_crossed_part_gets_per_factor_families_after_the_interaction():
    """2 losses x 2 optimizers with additive effects plus a cell outside the crossed part: the
    interaction line comes first and names the crossed part, then losses and optimizers (main
    effects, or within levels) on that part; their tests count in the total."""
    rows = confirm_table()
    clip = rows[rows["cell"] == "clip:adamw"]
    extra = [
        clip.assign(cell="clip:sgd_nesterov", optimizer="sgd_nesterov", r_mean=clip.r_mean - 25),
        clip.assign(cell="siglip:lion", loss="siglip", optimizer="lion"),
    ]
    confirm = pd.concat([rows, *extra], ignore_index=True)
    report = build_report(confirm, sweep_table(), primary="r_mean", mode="max", max_epochs=2)
    families = report.data["factors"]
    assert [(f["factor"], f["within"]) for f in families] in (
        [("loss", None), ("optimizer", None)],  # no interaction detected
        [
            ("loss", "optimizer=adamw"),
            ("loss", "optimizer=sgd_nesterov"),
            ("optimizer", "loss=clip"),
            ("optimizer", "loss=sogclr"),
        ],
    )
    assert report.verdict[0].startswith(
        "Loss x optimizer interaction on r_mean over the crossed cells (clip, sogclr) x "
        "(adamw, sgd_nesterov) (mixed model"
    )
    assert report.verdict[1].startswith(
        ("Losses, averaged over optimizers: ", "Losses within optimizer=")
    )
    labels = {
        ("loss", None): "losses, averaged over optimizers",
        ("optimizer", None): "optimizers, averaged over losses",
        ("loss", "optimizer=adamw"): "losses within optimizer=adamw",
        ("loss", "optimizer=sgd_nesterov"): "losses within optimizer=sgd_nesterov",
        ("optimizer", "loss=clip"): "optimizers within loss=clip",
        ("optimizer", "loss=sogclr"): "optimizers within loss=sogclr",
    }
    assert set(report.factors["family"]) == {labels[f["factor"], f["within"]] for f in families}
    n_tests = report.primary.n_tests + len(report.factors) + len(report.secondary)
    assert f"Tests run in all: {n_tests}." in render_html(report, title="t", setup={})


def test_importance_is_left_out_when_no_cell_has_enough_complete_trials():
    studies = {"clip:adamw": cell_study(9), "sogclr:adamw": cell_study(1)}
    report = build_report(
        confirm_table(), sweep_table(), primary="r_mean", mode="max", max_epochs=2, studies=studies
    )
    assert IMPORTANCE not in report.figures


def demo_confirm(seeds: int = 6) -> pd.DataFrame:
    """Issue 12's demo: 4 cells x 6 seeds x 1 epoch; clip:adamw ~74 r_mean points above
    clip:sgd_nesterov on every seed, the SGD cells varying less than the AdamW ones."""
    rng = np.random.default_rng(3)
    centre = {
        "clip:adamw": 76.0,
        "clip:sgd_nesterov": 2.0,
        "sogclr:adamw": 71.5,
        "sogclr:sgd_nesterov": 3.0,
    }
    spread = {
        "clip:adamw": 2.5,
        "clip:sgd_nesterov": 0.5,
        "sogclr:adamw": 2.5,
        "sogclr:sgd_nesterov": 0.5,
    }
    rows = []
    for cell, mean in centre.items():
        loss, optimizer = cell.split(":")
        for seed, value in enumerate(mean + rng.normal(0, spread[cell], seeds)):
            run = {"cell": cell, "loss": loss, "optimizer": optimizer, "seed": seed, "epoch": 1}
            rows.append({**run, "r_mean": value, "zs_top1": value / 2})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def demo_report():
    return build_report(demo_confirm(), sweep_table(), primary="r_mean", mode="max", max_epochs=1)


def test_with_the_demos_6_seeds_the_74_point_gap_is_significant(demo_report):
    ranked = demo_report.ranked
    assert ranked["cell"].iloc[0] == "clip:adamw" and ranked["rank"].tolist() == [1, 2, 3, 4]
    assert ranked.set_index("cell").loc["clip:sgd_nesterov", "group"] == "worse than the best"
    assert ranked["p_best"].iloc[0] > 0.9 and ranked["p_best"].sum() == pytest.approx(1)
    first, path, gaps, *rest = demo_report.summary
    assert 3 <= len(demo_report.summary) <= 5
    assert first.startswith("With 6 seeds per cell, clip:adamw has the best mean r_mean")
    assert path.startswith("Test path: parametric (paired t-tests with Holm over 6 pairs")
    assert gaps.startswith("clip:adamw is significantly better than")
    assert "to clip:sgd_nesterov, is +73.4 r_mean points" in gaps  # ~74, every seed
    assert "can call no difference" not in rest[-1] and "80% power" in rest[-1]
    data = json.loads(to_json(demo_report))
    assert data["summary"] == demo_report.summary
    assert data["primary"]["test_choice"]["path"] == "parametric"
    assert [r["cell"] for r in data["ranked"]] == ranked["cell"].tolist()


def test_the_first_screen_is_the_question_the_ranked_table_and_the_verdict(demo_report):
    page = render_html(demo_report, title="t", setup={"cells": "4"})
    body = page.split("<body>", 1)[1]
    first_screen = body.split("<hr>", 1)[0]
    assert first_screen.index("Question:") < first_screen.index("class='ranked'")
    assert first_screen.index("class='ranked'") < first_screen.index("<h2>Verdict</h2>")
    assert "plotly-graph-div" not in first_screen and "<details>" not in first_screen
    for line in demo_report.summary:
        assert html.escape(line) in first_screen
    assert first_screen.count("<tr>") == 1 + 4  # header + one row per cell
    assert "P(best)" in first_screen
    details = body.split("<hr>", 1)[1]
    assert details.count("<details>") >= 2  # long tables collapsible
    for cell in re.findall(r"<td>([-+0-9.e]+)</td>", page):  # table numbers: 3 digits
        assert len(cell.lstrip("-+0.").split("e")[0].replace(".", "")) <= 3, cell
