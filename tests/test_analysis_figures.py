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
    """Two cells, each its own study with trial numbers 0..2, and a 4-epoch budget; trials
    arrive interleaved (trial_id t0..t5).

    trial_id: cell #number, state, epochs reached, final r_mean, lr
    t0: clip:adamw #0 COMPLETE 4 -> 10, 1e-3;   t1: siglip:sgd #0 COMPLETE 4 -> 8, 1e-1
    t2: clip:adamw #1 PRUNED   1 -> 50, 1e-4;   t3: siglip:sgd #1 PRUNED   2 -> 60, 1e-2
    t4: clip:adamw #2 COMPLETE 4 -> 20, 1e-2;   t5: siglip:sgd #2 COMPLETE 4 -> 5,  1e-1
    """
    spec = [
        ("clip:adamw", 0, "COMPLETE", 4, 10.0, 1e-3),
        ("siglip:sgd", 0, "COMPLETE", 4, 8.0, 1e-1),
        ("clip:adamw", 1, "PRUNED", 1, 50.0, 1e-4),
        ("siglip:sgd", 1, "PRUNED", 2, 60.0, 1e-2),
        ("clip:adamw", 2, "COMPLETE", 4, 20.0, 1e-2),
        ("siglip:sgd", 2, "COMPLETE", 4, 5.0, 1e-1),
    ]
    rows = []
    for trial, (cell, number, state, epochs, final, lr) in enumerate(spec):
        loss, optimizer = cell.split(":")
        for epoch in range(1, epochs + 1):
            rows.append(
                {
                    "trial_id": f"t{trial}",
                    "cell": cell,
                    "number": number,
                    "state": state,
                    "epoch": epoch,
                    "r_mean": final if epoch == epochs else final - 1.0,
                    "loss": loss,
                    "optimizer": optimizer,
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


def test_final_per_trial_keys_by_trial_id_not_number():
    final = sweep_figures.final_per_trial(_sweep())
    assert final["trial_id"].tolist() == ["t0", "t2", "t4", "t1", "t3", "t5"]
    assert final["cell"].tolist() == ["clip:adamw"] * 3 + ["siglip:sgd"] * 3
    assert final["number"].tolist() == [0, 1, 2, 0, 1, 2]
    assert final["r_mean"].tolist() == [10.0, 50.0, 20.0, 8.0, 60.0, 5.0]


@pytest.mark.parametrize(
    ("mode", "clip_best", "siglip_best"),
    [("max", [10.0, 20.0], [8.0, 8.0]), ("min", [10.0, 10.0], [8.0, 5.0])],
)
def test_optimization_history_one_best_line_per_cell(mode, clip_best, siglip_best):
    fig = sweep_figures.optimization_history(_sweep(), "r_mean", mode=mode)
    _serializes(fig)
    assert [t.name for t in fig.data] == ["COMPLETE", "PRUNED", "clip:adamw", "siglip:sgd"]
    complete, pruned, clip, siglip = fig.data
    assert list(complete.x) == [0, 2, 0, 2]
    assert list(complete.y) == [10.0, 20.0, 8.0, 5.0]
    assert list(complete.text) == ["clip:adamw", "clip:adamw", "siglip:sgd", "siglip:sgd"]
    assert list(pruned.x) == [1, 1] and list(pruned.y) == [50.0, 60.0]  # never a best
    assert list(clip.x) == [0, 2] and list(clip.y) == clip_best
    assert list(siglip.x) == [0, 2] and list(siglip.y) == siglip_best
    # a cell's points take its line's colour
    assert list(complete.marker.color) == [clip.line.color] * 2 + [siglip.line.color] * 2
    assert clip.line.color != siglip.line.color


def test_optimization_history_drops_nan_and_cells_without_complete():
    base = {"number": 3, "epoch": 1}
    extra = pd.DataFrame(
        [
            {**base, "trial_id": "t6", "cell": "siglip:sgd", "state": "FAIL", "r_mean": math.nan},
            {**base, "trial_id": "t7", "cell": "clip:sgd", "state": "PRUNED", "r_mean": 3.0},
        ]
    )
    fig = sweep_figures.optimization_history(pd.concat([_sweep(), extra]), "r_mean", mode="max")
    # no FAIL trace (its value is NaN) and no line for clip:sgd (no COMPLETE trial)
    assert [t.name for t in fig.data] == ["COMPLETE", "PRUNED", "clip:adamw", "siglip:sgd"]
    assert list(fig.data[1].text) == ["clip:adamw", "clip:sgd", "siglip:sgd"]


def test_optimization_history_rejects_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        sweep_figures.optimization_history(_sweep(), "r_mean", mode="maximize")


def test_optimization_history_needs_the_cell_column():
    with pytest.raises(ValueError, match="cell"):
        sweep_figures.optimization_history(_sweep().drop(columns="cell"), "r_mean", mode="max")


def test_rung_survival_counts():
    fig = sweep_figures.rung_survival(_sweep(), max_epochs=4)
    _serializes(fig)
    (bar,) = fig.data
    assert bar.name == "trials"
    assert list(bar.x) == [1, 2, 3, 4]
    assert list(bar.y) == [6, 5, 4, 4]


def test_parallel_coordinates_dimensions():
    params = ["loss", "optimizer", "lr", "temperature"]
    fig = sweep_figures.parallel_coordinates(_sweep(), "r_mean", params)
    _serializes(fig)
    (par,) = fig.data
    dims = par.dimensions
    assert [d.label for d in dims] == ["loss", "optimizer", "log10 lr", "temperature", "r_mean"]
    assert list(dims[-1].values) == [10.0, 20.0, 8.0, 5.0]  # COMPLETE, by (cell, number)
    assert list(par.line.color) == [10.0, 20.0, 8.0, 5.0]
    assert list(dims[0].ticktext) == ["clip", "siglip"]
    assert list(dims[0].values) == [0.0, 0.0, 1.0, 1.0]
    assert list(dims[1].ticktext) == ["adamw", "sgd"]
    assert np.allclose(dims[2].values, [-3.0, -2.0, -1.0, -1.0])
    assert list(dims[2].ticktext) == ["1e-3", "1e-2", "1e-1"]
    fig = sweep_figures.parallel_coordinates(
        _sweep(), "r_mean", params, states=("COMPLETE", "PRUNED")
    )
    # six trials, although only three distinct numbers
    assert list(fig.data[0].dimensions[-1].values) == [10.0, 50.0, 20.0, 8.0, 60.0, 5.0]


def _study(n_complete: int, knob: str = "temperature") -> optuna.Study:
    """``n_complete`` COMPLETE trials where lr matters most, then one PRUNED trial; ``loss``
    is fixed (a one-value distribution)."""
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("loss", ["clip"])
        x = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        y = trial.suggest_float(knob, 0.01, 1.0)
        return -((np.log10(x) + 2) ** 2) + 0.01 * y

    study.optimize(objective, n_trials=n_complete)
    pruned = study.ask()
    pruned.suggest_float("lr", 1e-4, 1e-1, log=True)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    return study


def test_param_importance_heatmap_rows_per_cell():
    studies = {
        "sogclr:sgd": _study(12, knob="gamma"),
        "clip:adamw": _study(12),
        "clip:lion": _study(1),
    }
    fig = sweep_figures.param_importance(studies)
    _serializes(fig)
    (heat,) = fig.data
    assert heat.type == "heatmap" and heat.name == "importance"
    assert list(heat.y) == ["clip:adamw", "clip:lion", "sogclr:sgd"]
    assert heat.x[0] == "lr"  # most important; "loss" is fixed, so no column
    assert sorted(heat.x) == ["gamma", "lr", "temperature"]
    z = pd.DataFrame(heat.z, index=heat.y, columns=heat.x)
    assert math.isclose(z.loc["clip:adamw"].sum(), 1.0)
    assert math.isclose(z.loc["sogclr:sgd"].sum(), 1.0)
    assert z.loc["clip:adamw", "lr"] > 0.5 and z.loc["sogclr:sgd", "lr"] > 0.5
    assert np.isnan(z.loc["clip:adamw", "gamma"]) and np.isnan(z.loc["sogclr:sgd", "temperature"])
    assert z.loc["clip:lion"].isna().all()  # one COMPLETE trial: empty row
    assert list(heat.text[1]) == ["", "", ""]
    assert heat.text[0][0] == f"{z.loc['clip:adamw', 'lr']:.2f}"
    assert "clip:lion (1)" in fig.layout.title.subtitle.text
    assert "PedAnova" in fig.layout.title.text


def test_param_importance_every_cell_enough_has_no_note():
    fig = sweep_figures.param_importance({"clip:adamw": _study(12)})
    assert not fig.layout.title.subtitle.text
    assert list(fig.data[0].y) == ["clip:adamw"]


@pytest.mark.parametrize("n_complete", [0, 1])
def test_param_importance_too_few_complete_everywhere(n_complete):
    fig = sweep_figures.param_importance({"a:x": _study(n_complete), "b:y": _study(0)})
    _serializes(fig)
    (heat,) = fig.data
    assert np.isnan(np.asarray(heat.z, dtype=float)).all()
    assert f"a:x ({n_complete}), b:y (0)" in fig.layout.title.subtitle.text


def test_param_importance_without_sampled_params():
    fig = sweep_figures.param_importance({"a:x": optuna.create_study()})
    _serializes(fig)
    assert len(fig.data) == 0
    assert "no sampled parameter" in fig.layout.annotations[0].text
