"""Error rates of the comparison's decisions, by simulation (analysis.calibration): the
family-wise error under the null at 3, 5 and 10 seeds, the power for a 3-SD effect at 5 seeds
(4 cells, Holm over 6 pairs), and the Bayesian decision rule's rates. The full table:
python benchmarks/calibration.py."""

import pytest
from scipy import stats

from analysis.calibration import error_rates

ALPHA = 0.05
STUDIES = 5000  # frequentist rates: one batch of studies, about a second each


@pytest.mark.parametrize("n_seeds", [3, 5, 10])
def test_family_wise_error_under_the_null_is_at_most_alpha(n_seeds):
    rates = error_rates(n_seeds, n_studies=STUDIES, alpha=ALPHA)
    # Holm's bound is nearly tight for 6 pairs (about 0.045): the measured rate must not be
    # significantly above alpha (an FWER of 0.06 fails this with 5000 studies)
    errors = round(rates.family_wise_error * STUDIES)
    assert stats.binomtest(errors, STUDIES, ALPHA, alternative="greater").pvalue > 0.01
    assert rates.family_wise_error > 0.03  # not vacuous: the tests do reject sometimes
    assert rates.parametric_share > 0.9  # normal data: Shapiro–Wilk rejects ~5% at most


def test_power_for_a_3_sd_effect_with_5_seeds():
    rates = error_rates(5, effect=3.0, n_studies=STUDIES, alpha=ALPHA)
    assert rates.power >= 0.8  # a paired t-test alone reaches 0.864 (statsmodels TTestPower)
    assert rates.family_wise_error <= 0.06


@pytest.mark.parametrize(("n_seeds", "bound"), [(3, 0.12), (5, 0.05), (10, 0.03)])
def test_bayesian_decision_rates(n_seeds, bound):
    """One pair per study (2 cells), paired-difference SD 2 metric units, ROPE ±1, decision
    at 0.95: false claims of a difference under the null stay below ``bound`` (the Bayesian
    rule is not a multiplicity correction: with 6 pairs and 3 seeds it claims one in about
    a fifth of null studies, see the benchmark), and a 3-SD effect is found."""
    common = {"n_cells": 2, "sd_diff": 2.0, "rope": 1.0, "n_studies": 300, "alpha": ALPHA}
    null = error_rates(n_seeds, **common)
    assert null.bayes_family_wise_error <= bound
    if n_seeds == 5:
        shifted = error_rates(5, effect=3.0, **common)
        assert shifted.bayes_power >= 0.9
        assert shifted.bayes_false_equivalence == 0.0
