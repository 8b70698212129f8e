"""How much the whole-range verification sample saves (issue 16): on a synthetic population with
known truth (20,000 images, 40 % at zero activation, the concept likelier where the unit fires but
also present where it is silent), the root-mean-square error of the weighted precision / recall /
F1 / correlation from the rank-stratified sample (``dissect.verification_sampling``) against a
simple random sample of the same size, and how many random images match the stratified RMSE.

    .venv/bin/python bench/bench_verification_sampling.py [--n 300] [--trials 300]

Prints ratios measured in this one run (no timing)."""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from annotate.labels.whole_range import MEASURES, weighted_measures  # noqa: E402
from dissect.verification_sampling import stratified_sample  # noqa: E402


def population(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    a = np.where(rng.random(n) < 0.4, 0.0, rng.gamma(2.0, 1.0, n))
    p = 1 / (1 + np.exp(-(a - 4.0) * 1.5)) * 0.9 + 0.02
    z = (rng.random(n) < p).astype(float)
    return a, z, a > np.quantile(a, 0.995)


def rmse(a, z, f, *, n, trials, design):
    truth = weighted_measures(activation=a, present=z, fires=f, weight=np.ones(len(a)))
    errors = {m: [] for m in MEASURES}
    rng = np.random.default_rng(1)
    for t in range(trials):
        if design == "stratified":
            drawn, _ = stratified_sample(a, np.arange(len(a)), n=n, seed=t)
            idx = np.array([i for i, _, _ in drawn])
            w = np.array([1 / p for _, p, _ in drawn])
        else:
            idx = rng.choice(len(a), n, replace=False)
            w = np.ones(n)
        est = weighted_measures(activation=a[idx], present=z[idx], fires=f[idx], weight=w)
        for m in MEASURES:
            # An undefined estimate (no firing image drawn) counts as the worst error, 1.
            errors[m].append(1.0 if est[m] is None else est[m] - truth[m])
    return {m: float(np.sqrt(np.mean(np.square(errors[m])))) for m in MEASURES}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--trials", type=int, default=300)
    args = parser.parse_args()
    a, z, f = population()
    strat = rmse(a, z, f, n=args.n, trials=args.trials, design="stratified")
    print(f"population 20000, sample n={args.n}, {args.trials} trials")
    print(
        f"{'measure':<12}{'RMSE stratified':>16}{'RMSE random':>13}{'random n for same RMSE':>24}"
    )
    rand = rmse(a, z, f, n=args.n, trials=args.trials, design="random")
    for m in MEASURES:
        # Find the random sample size whose RMSE matches the stratified one (doubling search).
        size, match = args.n, rand[m]
        while match > strat[m] and size < len(a):
            size = min(len(a), size * 2)
            match = rmse(a, z, f, n=size, trials=max(50, args.trials // 3), design="random")[m]
        shown = f"{size}" if match <= strat[m] else f">{size}"
        print(f"{m:<12}{strat[m]:>16.4f}{rand[m]:>13.4f}{shown:>24}")


if __name__ == "__main__":
    main()
