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
from scipy import stats as _sps

__all__ = ["REPORTED_PERCENTILES", "nearest_rank", "quantile_interval", "LatencySummary", "summarize"]

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
