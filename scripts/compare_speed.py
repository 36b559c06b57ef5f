"""Speed of the regression gate's statistics: the ratio-of-medians interval of one compared cell (2,000 bootstrap
medians of each side, `bench.analysis.compare.ratio_interval`) against building the resamples and taking row
medians, the method it replaced, at several sample counts.

    python scripts/compare_speed.py [--sizes 300,3000,10000] [--repeats 20]

Prints a Markdown table of the median wall time per cell. Both methods draw from the same distribution (the
test `test_median_is_the_nearest_rank_order_statistic_everywhere` checks it); only the cost differs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.analysis.compare import BOOTSTRAP_RESAMPLES, ratio_interval  # noqa: E402


def _resampled_interval(baseline: np.ndarray, current: np.ndarray, seed: int) -> tuple[float, float]:
    """The replaced method: every resample built, then its nearest-rank median."""
    rng = np.random.default_rng(seed)
    b = np.quantile(rng.choice(baseline, size=(BOOTSTRAP_RESAMPLES, baseline.size)), 0.5, axis=1, method="inverted_cdf")
    c = np.quantile(rng.choice(current, size=(BOOTSTRAP_RESAMPLES, current.size)), 0.5, axis=1, method="inverted_cdf")
    low, high = np.percentile(c / b, [2.5, 97.5])
    return float(low), float(high)


def _median_seconds(function, repeats: int, *args) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="300,3000,10000", help="samples per side, comma-separated")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats per method and size (median shown)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        if not sizes or min(sizes) < 1 or max(sizes) > 1_000_000 or not 1 <= args.repeats <= 1000:
            raise ValueError
    except ValueError:
        parser.error(f"--sizes {args.sizes!r} / --repeats {args.repeats}: expected whole numbers 1-1,000,000 / 1-1,000")
    rng = np.random.default_rng(0)
    print(
        "| samples per side | exact bootstrap of the median (ms/cell) | resampled rows (ms/cell) | interval (exact) |"
    )
    print("|---|---|---|---|")
    for n in sizes:
        base = rng.lognormal(0.0, 0.2, n)
        current = base * 1.01
        exact = _median_seconds(ratio_interval, args.repeats, base, current, 1)
        resampled = _median_seconds(_resampled_interval, max(1, min(args.repeats, 20_000 // n)), base, current, 1)
        low, high = ratio_interval(base, current, 1)
        print(f"| {n:,} | {exact * 1e3:.2f} | {resampled * 1e3:.1f} | [{low:.4f}, {high:.4f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
