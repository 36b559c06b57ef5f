import random

import numpy as np
import pytest

from bench.stats import nearest_rank, quantile_interval, summarize


def test_nearest_rank_is_an_observed_value():
    values = list(range(1, 101))
    assert nearest_rank(values, 0.5) == 50
    assert nearest_rank(values, 0.9) == 90
    assert nearest_rank(values, 0.99) == 99
    assert nearest_rank([7], 0.99) == 7


def test_median_interval_uses_binomial_order_statistics():
    # stats.md: n=30 -> [x(10), x(21)]; n=1000 -> [x(469), x(532)] (1-based ranks)
    values = list(range(1, 31))
    assert quantile_interval(values, 0.5) == (10, 21)
    values = list(range(1, 1001))
    assert quantile_interval(values, 0.5) == (469, 532)


def test_interval_absent_when_too_few_samples():
    assert quantile_interval([1, 2, 3, 4, 5], 0.5) is None  # a 95% median interval needs n >= 6
    assert quantile_interval(list(range(6)), 0.5) == (0, 5)
    assert quantile_interval(list(range(300)), 0.99) is None  # two-sided p99 needs n >= 368


def test_median_interval_coverage_on_seeded_data():
    """The 95% interval should cover the true median of a skewed distribution about 95% of the time."""
    rng = np.random.default_rng(7)
    true_median = np.exp(0.0)  # lognormal(0, 0.5) has median 1
    covered = 0
    trials = 400
    for _ in range(trials):
        sample = sorted(rng.lognormal(0.0, 0.5, size=50))
        low, high = quantile_interval(sample, 0.5)
        covered += low <= true_median <= high
    assert 0.92 <= covered / trials <= 0.995


def test_summarize():
    rng = random.Random(3)
    samples = [rng.randint(900, 1100) for _ in range(200)]
    s = summarize(samples)
    assert s.n == 200
    assert s.min == min(samples) and s.max == max(samples)
    assert s.p50 == sorted(samples)[99]
    assert s.p50_ci[0] <= s.p50 <= s.p50_ci[1]
    assert s.mean == pytest.approx(np.mean(samples))
    assert summarize([]) is None
