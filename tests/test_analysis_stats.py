"""analysis.compare_methods / adjust_secondary against direct scipy, statsmodels, baycomp and
scikit-posthocs calls on both test paths, plus the power floor, a planted effect, the demo's
74-point gap with 6 seeds, the batch decisions and bad input. (Error rates by simulation:
test_analysis_calibration.py.)"""

import gc
import itertools
import json

import baycomp
import numpy as np
import pandas as pd
import pytest
import scikit_posthocs as sp
from scipy import stats
from statsmodels.stats.anova import AnovaRM
from statsmodels.stats.multitest import multipletests

from analysis import Comparison, OmnibusResult, adjust_secondary, compare_methods
from analysis.bayesian import p_best, pair_posterior
from analysis.effect_sizes import hedges_g_paired, mean_diff_ci, vargha_delaney_a12_paired
from analysis.stats import (
    PAIRWISE_COLUMNS,
    family_decisions,
    min_wilcoxon_p,
    run_family,
    seeds_needed,
)

# bootstrap resamples and posterior samples where the CI or posterior is not under test
FAST = {"n_resamples": 199, "bayes_samples": 500}
NONPARAMETRIC = {**FAST, "path": "non-parametric"}


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


def rm_anova(vals: dict[str, np.ndarray]) -> tuple[float, float]:
    """(F, p) of statsmodels' AnovaRM called directly on {method: per-seed values}."""
    long = tidy(vals).rename(columns={"method": "cell"})
    row = AnovaRM(long, "value", "seed", within=["cell"]).fit().anova_table.iloc[0]
    return row["F Value"], row["Pr > F"]


def test_pvalues_equal_direct_library_calls_on_the_parametric_path():
    vals = fixed_scores()
    # rows of another metric (and shuffled row order) must not matter
    df = pd.concat([tidy(vals), tidy(fixed_scores(seed=7), metric="img_r1")])
    df = df.sample(frac=1.0, random_state=0)
    res = compare_methods(df, "zs_top1", **FAST)

    assert isinstance(res, Comparison)
    assert list(res.pairwise.columns) == list(PAIRWISE_COLUMNS)
    assert (res.test_choice.path, res.test_choice.omnibus_test) == ("parametric", "rm_anova")
    pairs = list(itertools.combinations(vals, 2))
    assert list(zip(res.pairwise.method_a, res.pairwise.method_b, strict=True)) == pairs
    assert (res.pairwise.test == "paired_t").all()
    direct = [stats.ttest_rel(vals[a], vals[b]) for a, b in pairs]
    np.testing.assert_allclose(res.pairwise.p_value, [t.pvalue for t in direct], rtol=1e-12)
    np.testing.assert_allclose(res.pairwise.statistic, [t.statistic for t in direct], rtol=1e-12)
    reject, p_adj, _, _ = multipletests([t.pvalue for t in direct], alpha=0.05, method="holm")
    np.testing.assert_allclose(res.pairwise.p_adjusted, p_adj, rtol=1e-12)
    assert res.pairwise.significant.tolist() == reject.tolist()

    f_value, f_p = rm_anova(vals)
    assert res.omnibus.test == "rm_anova"
    assert (res.omnibus.n_methods, res.omnibus.n_blocks) == (4, 9)
    assert res.omnibus.statistic == pytest.approx(f_value, rel=1e-12)
    assert res.omnibus.p_value == pytest.approx(f_p, rel=1e-12)

    diffs = {(a, b): vals[a] - vals[b] for a, b in pairs}
    np.testing.assert_allclose(res.pairwise.effect_size, [d.mean() for d in diffs.values()])
    assert (res.pairwise.ci_low <= res.pairwise.effect_size).all()
    assert (res.pairwise.effect_size <= res.pairwise.ci_high).all()
    assert (res.pairwise.n == 9).all()
    record = res.to_dict()
    assert record["test_choice"]["path"] == "parametric"
    assert record["test_choice"]["reason"].startswith("the paired differences look normal")
    json.dumps(record)  # JSON-ready


def test_pvalues_equal_direct_library_calls_on_the_nonparametric_path():
    vals = fixed_scores()
    res = compare_methods(tidy(vals), "zs_top1", **NONPARAMETRIC)
    assert res.test_choice.reason == "the non-parametric path was chosen by the caller"
    pairs = list(itertools.combinations(vals, 2))
    expected_p = [stats.wilcoxon(vals[a], vals[b], zero_method="wilcox").pvalue for a, b in pairs]
    np.testing.assert_allclose(res.pairwise.p_value, expected_p, rtol=1e-12)
    reject, p_adj, _, _ = multipletests(expected_p, alpha=0.05, method="holm")
    np.testing.assert_allclose(res.pairwise.p_adjusted, p_adj, rtol=1e-12)
    assert res.pairwise.significant.tolist() == reject.tolist()
    fr = stats.friedmanchisquare(*vals.values())
    assert res.omnibus == OmnibusResult("friedman", fr.statistic, fr.pvalue, 4, 9)


def test_non_normal_differences_take_the_nonparametric_path():
    vals = fixed_scores(n_methods=3, n_seeds=10)
    vals["m2"] = vals["m2"] + np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 40.0])  # one wild seed
    res = compare_methods(tidy(vals), "zs_top1", **FAST)
    assert res.test_choice.path == "non-parametric"
    assert "do not look normal" in res.test_choice.reason
    assert (res.pairwise.test == "wilcoxon").all()
    assert res.omnibus.test == "friedman"
    p = [stats.wilcoxon(vals[a], vals[b]).pvalue for a, b in itertools.combinations(vals, 2)]
    np.testing.assert_allclose(res.pairwise.p_value, p, rtol=1e-12)


def test_holm_matches_scikit_posthocs_matrix():
    vals = fixed_scores(seed=3)
    res = compare_methods(tidy(vals), "zs_top1", **NONPARAMETRIC)
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
    assert res.test_choice.pairwise_test == "paired_t"
    p = [stats.ttest_rel(vals[m], vals["m2"]).pvalue for m in ("m0", "m1", "m3")]
    np.testing.assert_allclose(res.pairwise.p_adjusted, multipletests(p, method="holm")[1])
    assert res.omnibus.test == "rm_anova"
    assert res.to_dict()["family"] == "vs-baseline"


def test_two_methods_omnibus_is_the_single_pairwise_test():
    vals = fixed_scores(n_methods=2, n_seeds=12)
    res = compare_methods(tidy(vals), "zs_top1", **FAST)
    t = stats.ttest_rel(vals["m0"], vals["m1"])
    assert res.omnibus.test == "paired_t"
    assert res.omnibus.p_value == pytest.approx(t.pvalue)
    assert res.omnibus.statistic == pytest.approx(t.statistic)
    assert res.pairwise.p_adjusted.iloc[0] == pytest.approx(t.pvalue)
    assert any("single paired t-test" in n for n in res.notes)
    w = compare_methods(tidy(vals), "zs_top1", **NONPARAMETRIC)
    assert w.omnibus.test == "wilcoxon"
    assert w.omnibus.p_value == pytest.approx(stats.wilcoxon(vals["m0"], vals["m1"]).pvalue)
    assert any("single Wilcoxon signed-rank test" in n for n in w.notes)


DEMO_CENTRE = {
    "clip:adamw": 76.0,
    "clip:sgd_nesterov": 2.0,
    "sogclr:adamw": 74.5,
    "sogclr:sgd_nesterov": 1.5,
}
DEMO_SPREAD = {
    "clip:adamw": 2.5,
    "clip:sgd_nesterov": 0.5,
    "sogclr:adamw": 2.5,
    "sogclr:sgd_nesterov": 0.5,
}


def demo_like(rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
    """The demo's confirmation (issue 12): 6 seeds x 4 cells (columns in ``DEMO_CENTRE``
    order); the AdamW cells learn (r_mean ~75, seed-to-seed SD 2.5), the SGD-Nesterov cells
    barely do (r_mean ~2, SD 0.5): clip:adamw is ~74 points above clip:sgd_nesterov on every
    seed. ``shape`` adds leading batch axes."""
    centre, spread = (np.array(list(d.values())) for d in (DEMO_CENTRE, DEMO_SPREAD))
    return centre + spread * rng.normal(size=(*shape, 6, 4))


def test_the_demos_74_point_gap_with_6_seeds_is_significant():
    """Issue 12: 6 of 6 seeds the same way, 74 points; the Wilcoxon floor 2/2^6 = 0.031 is
    above Holm's 0.05/6, so the non-parametric path cannot call it; the t path does."""
    values = demo_like(np.random.default_rng(3))
    vals = dict(zip(DEMO_CENTRE, values.T, strict=True))
    res = compare_methods(tidy(vals, metric="r_mean"), "r_mean")
    assert res.test_choice.path == "parametric"
    row = res.pairwise.set_index(["method_a", "method_b"]).loc[("clip:adamw", "clip:sgd_nesterov")]
    assert row.effect_size == pytest.approx(74, abs=3)
    assert row.significant and row.p_adjusted < 1e-4
    assert row.bayes_decision == "a better"
    assert not any(n.startswith("Power floor") for n in res.notes)
    assert res.p_best.idxmax() == "clip:adamw"
    forced = compare_methods(tidy(vals, metric="r_mean"), "r_mean", **NONPARAMETRIC)
    assert not forced.pairwise.significant.any()  # what the report said before
    assert any(n.startswith("Power floor") for n in forced.notes)


def test_the_demos_gap_is_called_in_most_such_studies():
    """Over 2000 draws of the demo-like table: Shapiro–Wilk (Bonferroni over 6 pairs) rejects
    normal differences about 5% of the time by construction, and the Wilcoxon path then can
    call nothing with 6 seeds; the gap is called in all other studies."""
    scores = demo_like(np.random.default_rng(0), (2000,))
    pairs = list(itertools.combinations(range(4), 2))
    gc.freeze()
    try:
        parametric, significant = family_decisions(scores, pairs)
    finally:
        gc.unfreeze()
    gap = significant[:, pairs.index((0, 1))]
    assert gap[parametric].all()
    assert not gap[~parametric].any()
    assert 0.92 <= gap.mean() <= 0.97


def test_bayesian_columns_equal_direct_baycomp_calls():
    vals = fixed_scores(n_methods=3, n_seeds=6)
    res = compare_methods(tidy(vals), "zs_top1", rope=0.5, bootstrap_seed=3, **FAST)
    for row in res.pairwise.itertuples():
        # baycomp works on y - x: (x higher, in the rope, y higher)
        left, rope, right = baycomp.SignedRankTest.probs(
            vals[row.method_a], vals[row.method_b], rope=0.5, nsamples=500, random_state=3
        )
        assert (row.p_a_better, row.p_equivalent, row.p_b_better) == pytest.approx(
            (left, rope, right)
        )
        assert (
            row.bayes_decision
            == pair_posterior(
                vals[row.method_a], vals[row.method_b], rope=0.5, n_samples=500, seed=3
            ).decision
        )
    wide = pd.DataFrame(vals)
    pd.testing.assert_series_equal(
        res.p_best, p_best(wide, n_draws=500, seed=3), check_names=False, check_index_type=False
    )
    assert res.to_dict()["rope"] == 0.5

    lower = compare_methods(tidy(vals), "zs_top1", rope=0.5, mode="min", bootstrap_seed=3, **FAST)
    np.testing.assert_allclose(lower.pairwise.p_a_better, res.pairwise.p_b_better)
    assert lower.p_best.idxmax() == wide.mean().idxmin()

    without = compare_methods(tidy(vals), "zs_top1", rope=None, **FAST)
    assert without.p_best is None
    assert without.pairwise.p_a_better.isna().all()
    assert without.pairwise.bayes_decision.isna().all()


def test_batch_decisions_equal_run_family():
    """``family_decisions`` (many studies at once, for calibration) decides as ``run_family``
    (one study, what compare_methods uses), on normal, heavy-tailed and tied data."""
    rng = np.random.default_rng(5)
    scores = np.concatenate(
        [
            rng.normal(0, 1, (20, 5, 4)) + np.array([1.5, 0, 0, 0]),
            rng.standard_t(1, (20, 5, 4)),
            np.round(rng.normal(0, 1, (8, 5, 4))),
        ]
    )
    pairs = list(itertools.combinations(range(4), 2))
    names = ["a", "b", "c", "d"]
    named = [(names[i], names[j]) for i, j in pairs]
    gc.freeze()  # statsmodels' Holm calls gc.collect() each time; keep that cheap
    try:
        parametric, significant = family_decisions(scores, pairs)
        for study, path, called in zip(scores, parametric, significant, strict=True):
            family = run_family(pd.DataFrame(study, columns=names), named)
            assert (family.choice.path == "parametric") == path
            assert family.significant.tolist() == called.tolist()
    finally:
        gc.unfreeze()
    assert 0 < parametric.sum() < len(parametric)  # both paths exercised
    assert significant.any()


def test_power_floor_helpers():
    assert min_wilcoxon_p(5) == 0.0625
    assert min_wilcoxon_p(10) == pytest.approx(0.001953125)
    assert seeds_needed(15, 0.05) == 10  # reference doc C2: Holm over 15 pairs needs k >= 10
    assert seeds_needed(1, 0.05) == 6
    for m in (1, 3, 6, 15, 276):
        k = seeds_needed(m, 0.05)
        assert min_wilcoxon_p(k) <= 0.05 / m < min_wilcoxon_p(k - 1)


def test_power_floor_note_for_5_seeds_6_methods():
    vals = fixed_scores(n_methods=6, n_seeds=5)
    res = compare_methods(tidy(vals), "zs_top1", **NONPARAMETRIC)
    floor = [n for n in res.notes if n.startswith("Power floor")]
    assert len(floor) == 1
    assert "at least 10 seeds" in floor[0]
    assert "not evidence of no difference" in floor[0]
    assert not res.pairwise.significant.any()
    parametric = compare_methods(tidy(vals), "zs_top1", **FAST)  # no floor on the t path
    assert parametric.test_choice.path == "parametric"
    assert not any(n.startswith("Power floor") for n in parametric.notes)


def test_no_power_floor_note_for_12_seeds_2_methods():
    res = compare_methods(tidy(fixed_scores(n_methods=2, n_seeds=12)), "zs_top1", **NONPARAMETRIC)
    assert not any(n.startswith("Power floor") for n in res.notes)


def test_planted_paired_effect_is_detected_with_the_right_sign():
    rng = np.random.default_rng(42)
    a = rng.normal(60, 5, 12)  # large seed-to-seed variance, shared by both methods
    b = a + 2.0 + rng.normal(0, 0.2, 12)
    res = compare_methods(tidy({"A": a, "B": b}), "zs_top1")
    row = res.pairwise.iloc[0]
    assert (row.method_a, row.method_b) == ("A", "B")
    assert row.significant
    assert row.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert (row.p_a_better, row.bayes_decision) == (0.0, "b better")
    assert res.p_best.to_dict() == {"A": 0.0, "B": 1.0}
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


def test_deterministic_bootstrap():
    df = tidy(fixed_scores())
    r1 = compare_methods(df, "zs_top1", n_resamples=999, bootstrap_seed=5, bayes_samples=999)
    r2 = compare_methods(df, "zs_top1", n_resamples=999, bootstrap_seed=5, bayes_samples=999)
    pd.testing.assert_frame_equal(r1.pairwise, r2.pairwise)
    pd.testing.assert_series_equal(r1.p_best, r2.p_best)


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
    assert res.test_choice.reason == "every tested pair ties on every seed"
    assert (res.pairwise.bayes_decision == "equivalent").all()
    np.testing.assert_allclose(res.p_best, 1 / 3)  # a three-way tie shares P(best)

    # one exact tie among 8 seeds: dropped by zero_method="wilcox", as scipy does
    y = x + np.array([0, 1, 2, 1, 3, 2, 4, 5.5])
    res = compare_methods(tidy({"a": y, "b": x}), "zs_top1", **NONPARAMETRIC)
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
    _bad(df, "path must be", path="bayesian")
    _bad(df, "mode must be", mode="best")
    _bad(df, "rope must be > 0", rope=0.0)
    _bad(df.values, "DataFrame")
