"""The report: a planted difference between cells is stated in the verdict with its numbers,
report.json holds every test, and the HTML is one self-contained page (plotly.js once)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis.report import (
    average_ranks,
    build_report,
    cliques,
    confirmation_scores,
    render_html,
    to_json,
)

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
    rows = [
        {"trial_id": f"t{n}", "number": n, "state": state, "epoch": e, "r_mean": 10.0 * n + e}
        for n, (state, epochs) in enumerate([("COMPLETE", 2), ("PRUNED", 1), ("COMPLETE", 2)])
        for e in range(1, epochs + 1)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report():
    return build_report(confirm_table(), sweep_table(), primary="r_mean", mode="max", max_epochs=2)


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
    assert data["primary"]["omnibus"]["test"] == "friedman"
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
