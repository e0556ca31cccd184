"""Error rates of the comparison's decisions, by simulation (``analysis.calibration``).

For 3, 5 and 10 seeds and 4 cells (Holm over 6 pairs): the family-wise error under the null
of identical cells, and the power for one cell shifted by 3 SDs of the paired difference,
frequentist (tests chosen by measurement) and Bayesian (signed-rank test, decision at 0.95,
ROPE 1 metric unit, paired-difference SD 2 units). About a minute on 2 cores.
Usage: python benchmarks/calibration.py [--studies 20000] [--bayes-studies 300]
"""

from __future__ import annotations

import argparse
import time

from scipy import stats

from analysis.calibration import error_rates

SEEDS = (3, 5, 10)
EFFECT = 3.0
SD_DIFF, ROPE = 2.0, 1.0


def _interval(rate: float, n: int) -> str:
    """The rate with its 95% Clopper–Pearson interval."""
    ci = stats.binomtest(round(rate * n), n).proportion_ci()
    return f"{rate:.3f} [{ci.low:.3f}, {ci.high:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20000)
    parser.add_argument("--bayes-studies", type=int, default=300)
    args = parser.parse_args()
    start = time.perf_counter()
    print(f"4 cells, Holm over 6 pairs, alpha 0.05; {args.studies} simulated studies per row")
    print("seeds  FWER (null)              power (3 SD)  parametric path (null)")
    for k in SEEDS:
        null = error_rates(k, n_studies=args.studies)
        shifted = error_rates(k, effect=EFFECT, n_studies=args.studies)
        print(
            f"{k:5d}  {_interval(null.family_wise_error, args.studies):23s}  "
            f"{shifted.power:12.3f}  {null.parametric_share:.3f}"
        )
    print(
        f"\nBayesian signed-rank, ROPE {ROPE:g}, paired-difference SD {SD_DIFF:g}, decision at "
        f"0.95; {args.bayes_studies} studies per row"
    )
    print("seeds  any false claim (null)  equivalent (null)  power (3 SD)  false equivalence")
    for k in SEEDS:
        kwargs = {"n_studies": args.bayes_studies, "sd_diff": SD_DIFF, "rope": ROPE}
        null = error_rates(k, **kwargs)
        shifted = error_rates(k, effect=EFFECT, **kwargs)
        print(
            f"{k:5d}  {null.bayes_family_wise_error:22.3f}  {null.bayes_equivalence:17.3f}  "
            f"{shifted.bayes_power:12.3f}  {shifted.bayes_false_equivalence:17.3f}"
        )
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
