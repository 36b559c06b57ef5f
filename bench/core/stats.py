"""Statistics derived from raw samples. No rendering, no I/O.

Method:
- Percentiles are order statistics, nearest rank: the q-quantile of n sorted samples is x(ceil(n*q)) (1-based),
  as MLPerf LoadGen and ../stats.md use. No interpolation, so every quoted percentile is a latency that was
  actually observed.
- The confidence interval of a quantile is distribution-free: with B ~ Binomial(n, q), the interval
  [x(l), x(u)] with l = B.ppf(alpha/2) and u = B.ppf(1 - alpha/2) + 1 covers the true quantile with
  probability >= 1 - alpha. It needs enough samples: n >= 6 for a 95% interval of the median, n >= 368 for p99.
  Below that the interval is reported as absent (None), never invented.
- Mean and standard deviation (ddof=1) are given for completeness; latency is skewed, so the median is the
  headline figure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np


class _LazyScipyStats:
    """scipy.stats, imported on first use: reading records and planning need none of it (it costs ~0.7 s)."""

    def __getattr__(self, name: str):
        from scipy import stats

        return getattr(stats, name)


_sps = _LazyScipyStats()

__all__ = [
    "REPORTED_PERCENTILES",
    "nearest_rank",
    "quantile_interval",
    "median",
    "bootstrap_medians",
    "LatencySummary",
    "summarize",
    "median_halfwidth_rel",
    "early_stopping_upper_bound",
    "early_stopping_min_count",
    "throughput_interval",
    "drift",
]

#: The percentiles every latency summary reports.
REPORTED_PERCENTILES = (50, 90, 95, 99)

#: Confidence level of every interval the harness reports.
CONFIDENCE = 0.95


def nearest_rank(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) of already sorted values: x(ceil(n*q)), 1-based."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no samples")
    rank = max(1, math.ceil(n * q - 1e-9))
    return sorted_values[rank - 1]


def log_symmetric_factor(error: float, figures: int = 1) -> float:
    """The band factor of a model that misses by `error` (predicted / true - 1), symmetric in log space:
    exp(sqrt(figures) x |ln(1 + error)|) -- a -90% miss is a factor of 10 either way, never 1 + |error| (which
    caps an under-prediction's band below 2x). `figures` > 1 combines that many independent misses (a ratio of
    two projections on different devices: 2)."""
    if error <= -1:
        return math.inf
    return math.exp(math.sqrt(figures) * abs(math.log1p(error)))


def median(values: Sequence[float]) -> float:
    """The median every table, comparison, gain and report shows for a cell: the nearest-rank 0.5 quantile
    x(ceil(n/2)) -- always a latency that was observed, and one number for one cell wherever it appears."""
    return float(nearest_rank(sorted(values), 0.5))


def bootstrap_medians(values: Sequence[float], resamples: int, rng) -> "np.ndarray":
    """`median` of `resamples` bootstrap resamples of `values` (n draws with replacement each), drawn from the
    bootstrap distribution of the median itself rather than by building the resamples.

    The nearest-rank median of a resample is its m-th smallest draw, m = ceil(n/2), so it is at most the j-th
    smallest value x(j) exactly when at least m of the n draws are: P(median* <= x(j)) = P(Binomial(n, j/n) >= m)
    (the exact bootstrap distribution of an order statistic). Inverting that CDF at `resamples` uniforms gives
    the same distribution as resampling and taking row medians, in O(n + resamples log n) instead of
    O(resamples x n): 2,000 resamples of 300 samples take ~0.3 ms instead of ~10 ms."""
    ordered = np.sort(np.asarray(values, dtype=float))
    n = ordered.size
    m = (n + 1) // 2
    cdf = _sps.binom.sf(m - 1, n, np.arange(1, n + 1) / n)  # P(median* <= x(j)), j = 1..n; cdf[-1] = 1
    index = np.searchsorted(cdf, rng.random(resamples), side="right")
    return ordered[np.minimum(index, n - 1)]


def quantile_interval(sorted_values: Sequence[float], q: float, confidence: float = CONFIDENCE):
    """Distribution-free two-sided interval for the q-quantile, or None when n is too small for one.

    Uses the binomial order-statistic bounds described in the module docstring. Returns (low, high).
    """
    n = len(sorted_values)
    if n == 0:
        return None
    alpha = 1.0 - confidence
    lower_rank = int(_sps.binom.ppf(alpha / 2, n, q))  # 1-based rank of the lower bound
    upper_rank = int(_sps.binom.ppf(1 - alpha / 2, n, q)) + 1
    if lower_rank < 1 or upper_rank > n:
        return None
    return (sorted_values[lower_rank - 1], sorted_values[upper_rank - 1])


@dataclass(frozen=True)
class LatencySummary:
    """Summary of one sample set, in the samples' unit (nanoseconds for latency)."""

    n: int
    mean: float
    std: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    p50_ci: tuple[float, float] | None
    p90_ci: tuple[float, float] | None
    p99_ci: tuple[float, float] | None

    @property
    def p50_ci_halfwidth_rel(self) -> float | None:
        """Half-width of the median's interval relative to the median (0.01 = +-1%)."""
        if self.p50_ci is None or self.p50 == 0:
            return None
        return (self.p50_ci[1] - self.p50_ci[0]) / (2 * self.p50)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["p50_ci_halfwidth_rel"] = self.p50_ci_halfwidth_rel
        return data


def median_and_halfwidth(samples: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """The median and its interval's half-width relative to it (None when n is too small), from one sort."""
    ordered = sorted(samples)
    interval = quantile_interval(ordered, 0.5, confidence)
    middle = float(nearest_rank(ordered, 0.5)) if ordered else 0.0
    if interval is None or middle <= 0:
        return middle, None
    return middle, (interval[1] - interval[0]) / (2 * middle)


def median_halfwidth_rel(samples: Sequence[float], confidence: float = CONFIDENCE) -> float | None:
    """Half-width of the median's interval relative to the median; None when n is too small."""
    return median_and_halfwidth(samples, confidence)[1]


def summarize(samples: Sequence[float]) -> LatencySummary | None:
    """Summarise samples; None for an empty set."""
    if len(samples) == 0:
        return None
    ordered = sorted(samples)
    arr = np.asarray(ordered, dtype=float)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return LatencySummary(
        n=len(ordered),
        mean=float(arr.mean()),
        std=std,
        min=float(ordered[0]),
        max=float(ordered[-1]),
        p50=float(nearest_rank(ordered, 0.50)),
        p90=float(nearest_rank(ordered, 0.90)),
        p95=float(nearest_rank(ordered, 0.95)),
        p99=float(nearest_rank(ordered, 0.99)),
        p50_ci=quantile_interval(ordered, 0.50),
        p90_ci=quantile_interval(ordered, 0.90),
        p99_ci=quantile_interval(ordered, 0.99),
    )


# ---------------------------------------------------------------------------------------------------------
# MLPerf-style early stopping: a one-sided upper confidence bound for a latency percentile claim

#: MLPerf LoadGen's confidence for early-stopping estimates.
EARLY_STOPPING_CONFIDENCE = 0.99


def early_stopping_upper_bound(
    sorted_values: Sequence[float], q: float, confidence: float = EARLY_STOPPING_CONFIDENCE
) -> tuple[float, int] | None:
    """An upper bound U on the true q-quantile that holds with probability >= `confidence`.

    With N samples and the true quantile Q, the number of samples at or over Q is Binomial(N, 1 - q), and
    B(t) = P[Binomial(N, 1 - q) <= t] is the chance of seeing at most t of them. MLPerf LoadGen's early
    stopping (loadgen/early_stopping.cc) takes the largest t with B(t) < 1 - confidence and reports
    U = x(N - t + 1) (1-based), the sample with t - 1 others above it: one rank more conservative than the
    continuous bound x(N - t), which keeps ties on the safe side. The same here, so figures match LoadGen's.
    Returns (U, t), or None when N is too small for t >= 1 (fewer than early_stopping_min_count(q) samples).
    Example: N = 1024, q = 0.9 gives t = 80 and U = x(945).
    """
    n = len(sorted_values)
    if n == 0:
        return None
    t = int(_sps.binom.ppf(1 - confidence, n, 1 - q))  # smallest t with CDF >= 1 - confidence
    while t >= 0 and _sps.binom.cdf(t, n, 1 - q) >= 1 - confidence:
        t -= 1
    if t < 1:
        return None
    return sorted_values[n - t], t


def early_stopping_min_count(q: float, overshoot: int = 1, confidence: float = EARLY_STOPPING_CONFIDENCE) -> int:
    """Fewest samples for which a bound with `overshoot` samples above it exists (MLPerf: p90 64, p99 662)."""
    n = overshoot + 1
    while _sps.binom.cdf(overshoot, n, 1 - q) >= 1 - confidence:
        n += 1
    return n


# ---------------------------------------------------------------------------------------------------------
# Throughput interval: batch means (consecutive samples are correlated, so not the naive standard error)

#: Batches for the batch-means interval.
BATCHES = 20


def throughput_interval(
    samples_ns: Sequence[int], items_per_call: int, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Interval for items per second: split the samples into consecutive batches, take each batch's mean call
    time, apply Student's t to the batch means, and invert. None below 2 x BATCHES samples."""
    n = len(samples_ns)
    if n < 2 * BATCHES:
        return None
    batches = np.array_split(np.asarray(samples_ns, dtype=float), BATCHES)
    means = np.array([b.mean() for b in batches])
    centre, half = means.mean(), _sps.t.ppf(0.5 + confidence / 2, BATCHES - 1) * means.std(ddof=1) / math.sqrt(BATCHES)
    if centre - half <= 0:
        return None
    return items_per_call * 1e9 / (centre + half), items_per_call * 1e9 / (centre - half)


# ---------------------------------------------------------------------------------------------------------
# Drift between the first and the last third of a run

#: A run drifted when its first and last thirds differ by more than this share, and significantly.
DRIFT_THRESHOLD = 0.02
DRIFT_P_VALUE = 0.001


def drift(samples: Sequence[float]) -> dict | None:
    """Compare the first and last thirds (Mann-Whitney U): {"ratio", "p_value", "drifted"}; None below 30."""
    n = len(samples)
    if n < 30:
        return None
    first, last = samples[: n // 3], samples[n - n // 3 :]
    ratio = float(np.median(last) / np.median(first))
    p_value = float(_sps.mannwhitneyu(first, last, alternative="two-sided").pvalue)
    return {
        "ratio": ratio,
        "p_value": p_value,
        "drifted": bool(p_value < DRIFT_P_VALUE and abs(ratio - 1) > DRIFT_THRESHOLD),
    }
