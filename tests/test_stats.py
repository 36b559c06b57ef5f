import random

import numpy as np
import pytest

from bench.core.stats import nearest_rank, quantile_interval, summarize


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


def test_early_stopping_matches_mlperf_figures():
    from bench.core.stats import early_stopping_min_count, early_stopping_upper_bound

    # stats.md / LoadGen: p90 needs 64 queries, p99 662, p99.9 6636; at N=1024 the p90 estimate is x(945)
    assert [early_stopping_min_count(q) for q in (0.9, 0.99, 0.999)] == [64, 662, 6636]
    assert early_stopping_upper_bound(list(range(1, 1025)), 0.9) == (945, 80)
    assert early_stopping_upper_bound(list(range(1, 64)), 0.9) is None


def test_early_stopping_bound_holds_with_99_percent_confidence():
    from bench.core.stats import early_stopping_upper_bound

    rng = np.random.default_rng(11)
    true_p90 = np.exp(0.5 * 1.2815515655446004)  # lognormal(0, 0.5)
    misses = sum(early_stopping_upper_bound(sorted(rng.lognormal(0, 0.5, 300)), 0.9)[0] < true_p90 for _ in range(1000))
    assert misses / 1000 <= 0.02  # nominal 1%


def test_throughput_interval_covers_the_true_rate():
    from bench.core.stats import throughput_interval

    rng = np.random.default_rng(12)
    covered = 0
    for _ in range(300):
        times = rng.gamma(20.0, 50_000.0, size=400)  # mean 1 ms per call, skewed
        low, high = throughput_interval(times, items_per_call=4)
        covered += low <= 4 * 1e9 / 1_000_000 <= high
    assert 0.9 <= covered / 300 <= 0.99


def test_drift_flags_a_slowing_run_only():
    from bench.core.stats import drift

    rng = np.random.default_rng(13)
    steady = rng.lognormal(0, 0.05, 300)
    assert drift(list(steady))["drifted"] is False
    slowing = steady * np.linspace(1.0, 1.2, 300)
    result = drift(list(slowing))
    assert result["drifted"] is True and result["ratio"] > 1.1
    assert drift([1.0] * 10) is None
