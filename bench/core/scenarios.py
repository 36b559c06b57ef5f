"""The one registry of load scenarios: "latency" (the harness's timed loop) and MLPerf LoadGen's scenarios.

Adding a LoadGen scenario is one `LoadGenScenario` entry here: the spec validates names and load parameters from
it, the planner its batch rule, bench.measure.loadgen maps it to LoadGen's TestScenario, and the renderers take
its headline metric and rate from it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LoadGenScenario", "LOADGEN_SCENARIOS", "SCENARIOS", "LOAD_KEYS"]


@dataclass(frozen=True)
class LoadGenScenario:
    """One MLPerf LoadGen scenario.

    loadgen_name          the mlperf_loadgen.TestScenario member
    headline              (label, LoadGen result key, unit "ns" or "1/s") of the figure a table shows
    rate_key              the LoadGen result key of its rate; `rate_per_query`: queries/s (x samples per query)
    quick_min_queries     fewest queries with which LoadGen's early stopping can judge the percentile (64 for
                          p90, 662 for p99); `official_min_queries`: MLPerf Inference's mlperf.conf value
    load_keys             scenario parameters that are part of a cell's identity (see bench.core.spec.LOAD_KEYS)
    one_sample_per_query  the batch size must be 1
    """

    name: str
    loadgen_name: str
    headline: tuple[str, str, str]
    rate_key: str
    rate_per_query: bool
    quick_min_queries: int
    official_min_queries: int
    load_keys: tuple[str, ...] = ()
    one_sample_per_query: bool = False


LOADGEN_SCENARIOS: dict[str, LoadGenScenario] = {
    s.name: s
    for s in (
        LoadGenScenario(
            "single-stream",
            "SingleStream",
            ("p90 latency", "90.00_percentile_latency_ns", "ns"),
            "qps_with_loadgen_overhead",
            True,
            64,
            1024,
            one_sample_per_query=True,
        ),
        LoadGenScenario(
            "multi-stream",
            "MultiStream",
            ("p99 latency per query", "99.00_percentile_latency_ns", "ns"),
            "qps_with_loadgen_overhead",
            True,
            662,
            270336,
        ),
        LoadGenScenario(
            "server",
            "Server",
            ("completed samples/s", "completed_samples_per_sec", "1/s"),
            "completed_samples_per_sec",
            False,
            662,
            270336,
            load_keys=("target_qps", "latency_ms", "ttft_ms", "tpot_ms"),
        ),
        LoadGenScenario(
            "offline", "Offline", ("samples/s", "samples_per_second", "1/s"), "samples_per_second", False, 1, 1
        ),
    )
}

#: How load is offered: "latency" is the harness's own timed loop; the others are MLPerf LoadGen's scenarios.
SCENARIOS = ("latency", *LOADGEN_SCENARIOS)

#: Scenario parameters that are part of a cell's identity (the question asked), per scenario:
#:   target_qps  Server: Poisson arrival rate, queries per second, or "max" (search for the highest valid rate)
#:   latency_ms  Server: the p99 latency bound (LoadGen's server_target_latency_ns; default 100 ms)
#:   ttft_ms     Server, generation workloads: p99 time-to-first-token bound (default 2000 ms, MLPerf Llama 2)
#:   tpot_ms     Server, generation workloads: p99 time-per-output-token bound (default 200 ms, MLPerf Llama 2)
LOAD_KEYS = {s.name: s.load_keys for s in LOADGEN_SCENARIOS.values() if s.load_keys}
