"""analysis.compare_methods / adjust_secondary against direct scipy, statsmodels and
scikit-posthocs calls, plus the power floor, a planted effect, a null simulation and bad input."""

import gc
import itertools
import json

import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.multitest import multipletests

from analysis import Comparison, OmnibusResult, adjust_secondary, compare_methods
from analysis.effect_sizes import hedges_g_paired, mean_diff_ci, vargha_delaney_a12_paired
from analysis.stats import PAIRWISE_COLUMNS, min_wilcoxon_p, seeds_needed

FAST = {"n_resamples": 199}  # bootstrap resamples where the CI itself is not under test


def tidy(values: dict[str, np.ndarray], metric: str = "zs_top1") -> pd.DataFrame:
    """Tidy frame from {method: per-seed values}; seeds 0..K-1."""
    return pd.DataFrame(
        [
            {"method": m, "seed": s, "metric": metric, "value": float(v)}
            for m, vals in values.items()
            for s, v in enumerate(vals)
        ]
    )


def fixed_scores(n_methods: int = 4, n_seeds: int = 9, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    seed_effect = rng.normal(50, 3, n_seeds)
    return {f"m{i}": seed_effect + 0.6 * i + rng.normal(0, 1, n_seeds) for i in range(n_methods)}


def test_pvalues_equal_direct_library_calls():
    vals = fixed_scores()
    # rows of another metric (and shuffled row order) must not matter
    df = pd.concat([tidy(vals), tidy(fixed_scores(seed=7), metric="img_r1")])
    df = df.sample(frac=1.0, random_state=0)
    res = compare_methods(df, "zs_top1", **FAST)

    assert isinstance(res, Comparison)
    assert list(res.pairwise.columns) == list(PAIRWISE_COLUMNS)
    pairs = list(itertools.combinations(vals, 2))
    assert list(zip(res.pairwise.method_a, res.pairwise.method_b, strict=True)) == pairs
    expected_p = [stats.wilcoxon(vals[a], vals[b], zero_method="wilcox").pvalue for a, b in pairs]
    np.testing.assert_allclose(res.pairwise.p_value, expected_p, rtol=1e-12)
    reject, p_adj, _, _ = multipletests(expected_p, alpha=0.05, method="holm")
    np.testing.assert_allclose(res.pairwise.p_adjusted, p_adj, rtol=1e-12)
    assert res.pairwise.significant.tolist() == reject.tolist()

    fr = stats.friedmanchisquare(*vals.values())
    assert res.omnibus == OmnibusResult("friedman", fr.statistic, fr.pvalue, 4, 9)
    assert res.omnibus.statistic == pytest.approx(fr.statistic)
    assert res.omnibus.p_value == pytest.approx(fr.pvalue)

    diffs = {(a, b): vals[a] - vals[b] for a, b in pairs}
    np.testing.assert_allclose(res.pairwise.effect_size, [d.mean() for d in diffs.values()])
    assert (res.pairwise.ci_low <= res.pairwise.effect_size).all()
    assert (res.pairwise.effect_size <= res.pairwise.ci_high).all()
    assert (res.pairwise.n == 9).all()
    json.dumps(res.to_dict())  # JSON-ready


def test_holm_matches_scikit_posthocs_matrix():
    vals = fixed_scores(seed=3)
    res = compare_methods(tidy(vals), "zs_top1", **FAST)
    df = tidy(vals).sort_values(["method", "seed"])  # posthoc_wilcoxon pairs by row order
    matrix = sp.posthoc_wilcoxon(
        df, val_col="value", group_col="method", p_adjust="holm", zero_method="wilcox"
    )
    for row in res.pairwise.itertuples():
        assert row.p_adjusted == pytest.approx(matrix.loc[row.method_a, row.method_b])


def test_baseline_family_is_each_method_vs_baseline():
    vals = fixed_scores(n_methods=4)
    res = compare_methods(tidy(vals), "zs_top1", baseline="m2", **FAST)
    assert res.pairwise.method_b.tolist() == ["m2"] * 3
    assert res.pairwise.method_a.tolist() == ["m0", "m1", "m3"]
    p = [stats.wilcoxon(vals[m], vals["m2"]).pvalue for m in ("m0", "m1", "m3")]
    np.testing.assert_allclose(res.pairwise.p_adjusted, multipletests(p, method="holm")[1])
    assert res.omnibus.test == "friedman"
    assert res.to_dict()["family"] == "vs-baseline"


def test_two_methods_omnibus_is_the_single_wilcoxon():
    vals = fixed_scores(n_methods=2, n_seeds=12)
    res = compare_methods(tidy(vals), "zs_top1", **FAST)
    w = stats.wilcoxon(vals["m0"], vals["m1"])
    assert res.omnibus.test == "wilcoxon"
    assert res.omnibus.p_value == pytest.approx(w.pvalue)
    assert res.omnibus.statistic == pytest.approx(w.statistic)
    assert res.pairwise.p_adjusted.iloc[0] == pytest.approx(w.pvalue)
    assert any("single paired Wilcoxon" in n for n in res.notes)


def test_power_floor_helpers():
    assert min_wilcoxon_p(5) == 0.0625
    assert min_wilcoxon_p(10) == pytest.approx(0.001953125)
    assert seeds_needed(15, 0.05) == 10  # reference doc C2: Holm over 15 pairs needs k >= 10
    assert seeds_needed(1, 0.05) == 6
    for m in (1, 3, 6, 15, 276):
        k = seeds_needed(m, 0.05)
        assert min_wilcoxon_p(k) <= 0.05 / m < min_wilcoxon_p(k - 1)


def test_power_floor_note_for_5_seeds_6_methods():
    res = compare_methods(tidy(fixed_scores(n_methods=6, n_seeds=5)), "zs_top1", **FAST)
    floor = [n for n in res.notes if n.startswith("Power floor")]
    assert len(floor) == 1
    assert "at least 10 seeds" in floor[0]
    assert "not evidence of no difference" in floor[0]
    assert not res.pairwise.significant.any()


def test_no_power_floor_note_for_12_seeds_2_methods():
    res = compare_methods(tidy(fixed_scores(n_methods=2, n_seeds=12)), "zs_top1", **FAST)
    assert not any(n.startswith("Power floor") for n in res.notes)


def test_planted_paired_effect_is_detected_with_the_right_sign():
    rng = np.random.default_rng(42)
    a = rng.normal(60, 5, 12)  # large seed-to-seed variance, shared by both methods
    b = a + 2.0 + rng.normal(0, 0.2, 12)
    res = compare_methods(tidy({"A": a, "B": b}), "zs_top1")
    row = res.pairwise.iloc[0]
    assert (row.method_a, row.method_b) == ("A", "B")
    assert row.significant
    assert row.p_value == pytest.approx(min_wilcoxon_p(12))
    assert row.effect_size == pytest.approx(-2.0, abs=0.2)
    assert row.ci_low < row.effect_size < row.ci_high < 0
    assert row.ci_method == "BCa"
    assert row.a12 == 0.0
    assert row.hedges_g < -3

    flipped = compare_methods(tidy({"A": a, "B": b}), "zs_top1", baseline="A").pairwise.iloc[0]
    assert (flipped.method_a, flipped.method_b) == ("B", "A")
    assert flipped.effect_size == pytest.approx(-row.effect_size)
    assert flipped.a12 == 1.0
    assert flipped.hedges_g == pytest.approx(-row.hedges_g)


def test_family_wise_error_under_the_null_is_controlled():
    rng = np.random.default_rng(20240601)
    n_studies, n_methods, n_seeds = 200, 4, 10
    any_significant = 0
    gc.freeze()  # statsmodels' Holm calls gc.collect() each time; keep that cheap
    try:
        for _ in range(n_studies):
            seed_effect = rng.normal(0, 5, n_seeds)  # paired by seed, identical methods
            vals = {f"m{i}": seed_effect + rng.normal(0, 1, n_seeds) for i in range(n_methods)}
            res = compare_methods(tidy(vals), "zs_top1", n_resamples=50)
            any_significant += bool(res.pairwise.significant.any())
    finally:
        gc.unfreeze()
    assert any_significant / n_studies < 0.1


def test_deterministic_bootstrap():
    df = tidy(fixed_scores())
    r1 = compare_methods(df, "zs_top1", n_resamples=999, bootstrap_seed=5)
    r2 = compare_methods(df, "zs_top1", n_resamples=999, bootstrap_seed=5)
    pd.testing.assert_frame_equal(r1.pairwise, r2.pairwise)


def test_ties_and_identical_methods():
    x = np.arange(8, dtype=float)
    res = compare_methods(tidy({"a": x, "b": x.copy(), "c": x.copy()}), "zs_top1", **FAST)
    assert (res.pairwise.p_value == 1.0).all()
    assert not res.pairwise.significant.any()
    assert (res.pairwise.a12 == 0.5).all()
    assert (res.pairwise.hedges_g == 0.0).all()
    assert (res.pairwise.ci_method == "degenerate").all()
    assert (res.pairwise[["effect_size", "ci_low", "ci_high"]] == 0.0).all().all()
    assert res.omnibus.p_value == 1.0
    assert any("identically" in n for n in res.notes)

    # one exact tie among 8 seeds: dropped by zero_method="wilcox", as scipy does
    y = x + np.array([0, 1, 2, 1, 3, 2, 4, 5.5])
    res = compare_methods(tidy({"a": y, "b": x}), "zs_top1", **FAST)
    assert res.pairwise.p_value.iloc[0] == pytest.approx(stats.wilcoxon(y, x).pvalue)
    assert res.pairwise.a12.iloc[0] == pytest.approx(7 / 8 + 0.5 / 8)
    assert any("zero_method='wilcox'" in n for n in res.notes)


def test_effect_size_helpers():
    a = np.array([3.0, 5.0, 4.0, 6.0])
    b = np.array([1.0, 5.0, 5.0, 2.0])
    d = a - b
    assert vargha_delaney_a12_paired(a, b) == pytest.approx((2 + 0.5) / 4)
    j = 1 - 3 / (4 * 3 - 1)
    assert hedges_g_paired(a, b) == pytest.approx(j * d.mean() / d.std(ddof=1))
    assert np.isnan(hedges_g_paired(a + 1.0, a))  # constant non-zero difference: undefined
    md = mean_diff_ci(a + 1.0, a)
    assert (md.estimate, md.ci_low, md.ci_high, md.ci_method) == (1.0, 1.0, 1.0, "degenerate")
    with pytest.raises(ValueError, match="equal length"):
        vargha_delaney_a12_paired(a, b[:3])


def test_adjust_secondary_is_benjamini_hochberg():
    p = [0.01, 0.04, 0.03, 0.2, 0.005]
    np.testing.assert_allclose(adjust_secondary(p), multipletests(p, method="fdr_bh")[1])
    assert adjust_secondary([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_secondary([0.1, 1.5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_secondary([0.1, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        adjust_secondary([[0.1, 0.2]])


def _bad(df: pd.DataFrame, match: str, **kwargs) -> None:
    with pytest.raises(ValueError, match=match) as info:
        compare_methods(df, kwargs.pop("metric", "zs_top1"), **kwargs)
    assert "\n" not in str(info.value)


def test_invalid_input_errors():
    df = tidy(fixed_scores(n_methods=3, n_seeds=6))
    _bad(df.drop(columns="seed"), "missing columns")
    _bad(df, "no rows for metric 'nope'", metric="nope")
    _bad(df.drop(index=df.index[(df.method == "m1") & (df.seed == 4)]), "same seeds.*'m1'")
    _bad(pd.concat([df, df.iloc[[0]]]), "duplicate rows")
    _bad(df.assign(value=df.value.where(df.index != 3, np.nan)), "non-finite")
    _bad(df[df.method == "m0"], "at least 2 methods")
    _bad(df[df.seed == 0], "at least 2 paired seeds")
    _bad(df, "baseline 'zzz'", baseline="zzz")
    _bad(df, "alpha", alpha=1.5)
    _bad(df.values, "DataFrame")
