"""analysis.figures and analysis.sweep_figures: traces and numbers on small hand-made tables."""

import json
import math

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go
import pytest

from analysis import figures, sweep_figures

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _confirm() -> pd.DataFrame:
    """3 cells x 3 seeds x 2 epochs; "clip:sgd" is not run. r_mean at epoch 2 is known."""
    final = {
        ("clip", "adamw"): [10.0, 12.0, 14.0],
        ("siglip", "adamw"): [11.0, 15.0, 16.0],
        ("siglip", "sgd"): [5.0, 6.0, 10.0],
    }
    rows = []
    for (loss, opt), values in final.items():
        for seed, v in enumerate(values):
            for epoch in (1, 2):
                value = v if epoch == 2 else v / 2 + seed
                rows.append(
                    {
                        "cell": f"{loss}:{opt}",
                        "loss": loss,
                        "optimizer": opt,
                        "seed": seed,
                        "epoch": epoch,
                        "r_mean": value,
                        "zs_top1": value / 10,
                    }
                )
    return pd.DataFrame(rows)


def _pairwise() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method_a": ["b", "clip", "b"],
            "method_b": ["clip", "c", "c"],
            "p_adjusted": [0.01, 0.2, 0.5],
            "effect_size": [2.0, 1.0, 0.5],
            "ci_low": [1.0, -0.5, -1.0],
            "ci_high": [3.5, 2.0, 1.5],
        }
    )


def _sweep() -> pd.DataFrame:
    """Five trials with a 4-epoch budget; numbers 0..4.

    number: state, epochs reached, final r_mean
    0: COMPLETE 4 -> 10;  1: PRUNED 1 -> 50;  2: COMPLETE 4 -> 8;  3: PRUNED 2 -> 60;
    4: COMPLETE 4 -> 20
    """
    spec = [
        (0, "COMPLETE", 4, 10.0, "clip", "adamw", 1e-3),
        (1, "PRUNED", 1, 50.0, "clip", "sgd", 1e-1),
        (2, "COMPLETE", 4, 8.0, "siglip", "sgd", 1e-2),
        (3, "PRUNED", 2, 60.0, "siglip", "adamw", 1e-4),
        (4, "COMPLETE", 4, 20.0, "clip", "sgd", 1e-1),
    ]
    rows = []
    for number, state, epochs, final, loss, opt, lr in spec:
        for epoch in range(1, epochs + 1):
            rows.append(
                {
                    "trial_id": f"t{number}",
                    "number": number,
                    "state": state,
                    "epoch": epoch,
                    "r_mean": final if epoch == epochs else final - 1.0,
                    "loss": loss,
                    "optimizer": opt,
                    "lr": lr,
                    "temperature": 0.07,
                }
            )
    return pd.DataFrame(rows)


def _serializes(fig: go.Figure) -> None:
    assert isinstance(fig, go.Figure)
    json.loads(fig.to_json())


def _nan_equal(a, b) -> bool:
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), equal_nan=True)


# ------------------------------------------------------------------------------- figures.py


def test_final_rows_keeps_last_epoch():
    final = figures.final_rows(_confirm())
    assert len(final) == 9 and set(final["epoch"]) == {2}


def test_seed_strip_boxes_and_seed_lines():
    fig = figures.seed_strip(_confirm(), "r_mean")
    _serializes(fig)
    boxes = [t for t in fig.data if t.type == "box"]
    lines = [t for t in fig.data if t.type == "scatter"]
    assert [b.name for b in boxes] == ["clip:adamw", "siglip:adamw", "siglip:sgd"]
    assert list(boxes[0].y) == [10.0, 12.0, 14.0]
    assert [t.name for t in lines] == ["seed 0", "seed 1", "seed 2"]
    assert list(lines[1].x) == ["clip:adamw", "siglip:adamw", "siglip:sgd"]
    assert list(lines[1].y) == [12.0, 15.0, 6.0]


def test_seed_strip_missing_seed_leaves_gap():
    table = _confirm()
    table = table[~((table["cell"] == "siglip:sgd") & (table["seed"] == 2))]
    fig = figures.seed_strip(table, "r_mean")
    seed2 = next(t for t in fig.data if t.name == "seed 2")
    assert list(seed2.y) == [14.0, 16.0, None]


def test_forest_flips_to_contender_minus_baseline():
    fig = figures.forest(_pairwise(), baseline="clip", rope=0.5)
    _serializes(fig)
    assert len(fig.data) == 1
    (trace,) = fig.data
    # b - clip = 2 [1, 3.5]; c - clip = -(clip - c) = -1 [-2, 0.5]; sorted by difference
    assert list(trace.y) == ["c", "b"]
    assert list(trace.x) == [-1.0, 2.0]
    assert list(trace.error_x.array) == [0.5 - (-1.0), 3.5 - 2.0]
    assert list(trace.error_x.arrayminus) == [-1.0 - (-2.0), 2.0 - 1.0]
    assert list(trace.marker.symbol) == ["circle-open", "circle"]
    assert any(s.type == "line" and s.x0 == 0 and s.x1 == 0 for s in fig.layout.shapes)
    assert any(s.type == "rect" for s in fig.layout.shapes)


def test_forest_unknown_baseline_raises():
    with pytest.raises(ValueError, match="baseline"):
        figures.forest(_pairwise(), baseline="nope")


def test_cell_heatmap_means_and_blank_cell():
    fig = figures.cell_heatmap(_confirm(), "r_mean")
    _serializes(fig)
    (heat,) = fig.data
    assert list(heat.y) == ["clip", "siglip"] and list(heat.x) == ["adamw", "sgd"]
    assert _nan_equal(heat.z, [[12.0, math.nan], [14.0, 7.0]])
    assert [list(r) for r in heat.text] == [["12.00", ""], ["14.00", "7.00"]]


def test_critical_difference_traces():
    ranks = {"a": 1.2, "b": 2.0, "c": 2.4, "d": 3.9, "e": 4.5}
    cliques = [{"a", "b", "c"}, {"d", "e"}, {"e"}]
    fig = figures.critical_difference(ranks, cliques, cd=1.1)
    _serializes(fig)
    names = [t.name for t in fig.data]
    assert names == ["a", "b", "c", "d", "e", "clique 0", "clique 1", "CD"]
    by_name = {t.name: t for t in fig.data}
    # each connector starts on the axis at the method's rank
    for m, r in ranks.items():
        assert by_name[m].x[0] == r and by_name[m].y[0] == 0
    # better half on the left (x end < 1), worse half on the right (x end > k)
    assert by_name["a"].x[-1] < 1 and by_name["e"].x[-1] > 5
    assert list(by_name["clique 0"].x) == [1.2, 2.4]
    assert list(by_name["clique 1"].x) == [3.9, 4.5]
    assert list(by_name["CD"].x) == [1.0, 2.1]
    assert list(fig.layout.xaxis.tickvals) == [1, 2, 3, 4, 5]


def test_critical_difference_without_cd_and_unknown_method():
    fig = figures.critical_difference({"a": 1.0, "b": 2.0}, [])
    assert [t.name for t in fig.data] == ["a", "b"]
    with pytest.raises(ValueError, match="unknown"):
        figures.critical_difference({"a": 1.0}, [{"a", "z"}])


def test_pvalue_heatmap_symmetric():
    fig = figures.pvalue_heatmap(_pairwise())
    _serializes(fig)
    (heat,) = fig.data
    assert list(heat.x) == ["b", "c", "clip"]
    z = np.asarray(heat.z, dtype=float)
    assert _nan_equal(z, z.T)
    assert np.isnan(np.diag(z)).all()
    assert z[0, 2] == 0.01 and z[1, 2] == 0.2 and z[0, 1] == 0.5


def test_learning_curves_median_and_iqr_match_numpy():
    confirm = _confirm()
    fig = figures.learning_curves(confirm, "r_mean")
    _serializes(fig)
    assert [t.name for t in fig.data] == [
        "clip:adamw IQR",
        "clip:adamw",
        "siglip:adamw IQR",
        "siglip:adamw",
        "siglip:sgd IQR",
        "siglip:sgd",
    ]
    band, median = fig.data[2], fig.data[3]
    rows = confirm[confirm["cell"] == "siglip:adamw"]
    per_epoch = [rows.loc[rows["epoch"] == e, "r_mean"].to_numpy() for e in (1, 2)]
    assert list(median.x) == [1.0, 2.0]
    assert np.allclose(median.y, [np.median(v) for v in per_epoch])
    q25 = [np.percentile(v, 25) for v in per_epoch]
    q75 = [np.percentile(v, 75) for v in per_epoch]
    assert list(band.x) == [1.0, 2.0, 2.0, 1.0]
    assert np.allclose(band.y, q75 + q25[::-1])
    assert band.fill == "toself"


# ------------------------------------------------------------------------- sweep_figures.py


def test_final_per_trial():
    final = sweep_figures.final_per_trial(_sweep())
    assert final["number"].tolist() == [0, 1, 2, 3, 4]
    assert final["r_mean"].tolist() == [10.0, 50.0, 8.0, 60.0, 20.0]


@pytest.mark.parametrize(("mode", "best"), [("max", [10.0, 10.0, 20.0]), ("min", [10.0, 8.0, 8.0])])
def test_optimization_history_best_so_far_ignores_pruned(mode, best):
    fig = sweep_figures.optimization_history(_sweep(), "r_mean", mode=mode)
    _serializes(fig)
    by_name = {t.name: t for t in fig.data}
    assert [t.name for t in fig.data] == ["COMPLETE", "PRUNED", "best so far"]
    assert list(by_name["COMPLETE"].x) == [0, 2, 4]
    assert list(by_name["PRUNED"].x) == [1, 3]
    assert list(by_name["PRUNED"].y) == [50.0, 60.0]
    line = by_name["best so far"]
    assert list(line.x) == [0, 2, 4] and list(line.y) == best
    steps = np.diff(line.y)
    assert (steps >= 0).all() if mode == "max" else (steps <= 0).all()


def test_optimization_history_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        sweep_figures.optimization_history(_sweep(), "r_mean", mode="maximize")


def test_rung_survival_counts():
    fig = sweep_figures.rung_survival(_sweep(), max_epochs=4)
    _serializes(fig)
    (bar,) = fig.data
    assert bar.name == "trials"
    assert list(bar.x) == [1, 2, 3, 4]
    assert list(bar.y) == [5, 4, 3, 3]


def test_parallel_coordinates_dimensions():
    params = ["loss", "optimizer", "lr", "temperature"]
    fig = sweep_figures.parallel_coordinates(_sweep(), "r_mean", params)
    _serializes(fig)
    (par,) = fig.data
    dims = par.dimensions
    assert [d.label for d in dims] == ["loss", "optimizer", "log10 lr", "temperature", "r_mean"]
    assert list(dims[-1].values) == [10.0, 8.0, 20.0]  # COMPLETE trials 0, 2, 4
    assert list(dims[0].ticktext) == ["clip", "siglip"]
    assert list(dims[0].values) == [0.0, 1.0, 0.0]
    assert np.allclose(dims[2].values, [-3.0, -2.0, -1.0])
    assert list(dims[2].ticktext) == ["1e-3", "1e-2", "1e-1"]
    fig = sweep_figures.parallel_coordinates(
        _sweep(), "r_mean", params, states=("COMPLETE", "PRUNED")
    )
    assert len(fig.data[0].dimensions[-1].values) == 5


def _study(n_complete: int) -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        y = trial.suggest_float("temperature", 0.01, 1.0)
        return -((np.log10(x) + 2) ** 2) + 0.01 * y

    study.optimize(objective, n_trials=n_complete)
    pruned = study.ask()
    pruned.suggest_float("lr", 1e-4, 1e-1, log=True)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    return study


def test_param_importance_bars():
    fig = sweep_figures.param_importance(_study(12))
    _serializes(fig)
    (bar,) = fig.data
    assert bar.name == "importance" and sorted(bar.y) == ["lr", "temperature"]
    assert math.isclose(sum(bar.x), 1.0)
    assert bar.y[-1] == "lr"  # most important on top


@pytest.mark.parametrize("n_complete", [0, 1])
def test_param_importance_too_few_complete(n_complete):
    fig = sweep_figures.param_importance(_study(n_complete))
    _serializes(fig)
    assert len(fig.data) == 0
    assert "at least 2 COMPLETE" in fig.layout.annotations[0].text
