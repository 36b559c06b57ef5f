"""How to measure: `MeasureSettings` (warm-up, timed loop, precision target, timeout) and `LoadGenSettings` (the
MLPerf LoadGen run of a LoadGen scenario cell), validated at construction with one-line errors naming the field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.core.scenarios import LOADGEN_SCENARIOS
from bench.core.spec import MAX_TIMEOUT_S, check_positive_int

__all__ = ["MeasureSettings", "LoadGenSettings", "QUICK_MIN_QUERIES", "OFFICIAL_MIN_QUERIES", "OFFICIAL_MIN_DURATION_S"]


#: Minimum query counts. Quick defaults: the fewest queries with which LoadGen's early stopping can judge the
#: scenario's percentile (64 for p90, 662 for p99); official: MLPerf Inference's mlperf.conf values.
QUICK_MIN_QUERIES = {s.name: s.quick_min_queries for s in LOADGEN_SCENARIOS.values()}
OFFICIAL_MIN_QUERIES = {s.name: s.official_min_queries for s in LOADGEN_SCENARIOS.values()}
OFFICIAL_MIN_DURATION_S = 600.0


def _check_number(name: str, value: Any, minimum: float, inclusive: bool, what: str) -> None:
    ok = (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and (value >= minimum if inclusive else value > minimum)
    )
    if not ok:
        raise invalid_value(name, value, what)


@dataclass(frozen=True)
class LoadGenSettings:
    """How long a LoadGen scenario runs, and what else the run does (the cell's question is in the spec).

    min_duration_s       LoadGen's min_duration: the run lasts at least this long (quick default 5 s)
    min_queries          LoadGen's min_query_count; None = QUICK_MIN_QUERIES for the scenario
    max_duration_s       stop at this duration even if the minimums are unmet (the result is then INVALID); 0 = none
    expected_latency_ms  what single-stream/multi-stream/offline plan with (expected latency, or samples per second
                         from it); None = the median call latency of the warm-up, measured just before the run
    seed                 LoadGen's qsl, sample-index and schedule seeds (all three)
    official             MLPerf's run rules: min_duration 600 s, OFFICIAL_MIN_QUERIES, no max_duration
    accuracy             after the performance run, an AccuracyOnly run whose responses are compared with the fp32
                         reference (the accuracy guard); skipped for the reference cell itself
    search_steps         Server with target_qps = "max": bisection runs after the first (highest rate tried first)
    """

    min_duration_s: float = 5.0
    min_queries: int | None = None
    max_duration_s: float = 300.0
    expected_latency_ms: float | None = None
    seed: int = 0
    official: bool = False
    accuracy: bool = True
    search_steps: int = 5

    def __post_init__(self) -> None:
        _check_number("min_duration_s", self.min_duration_s, 0, False, "a number of seconds > 0")
        _check_number("max_duration_s", self.max_duration_s, 0, True, "a number of seconds >= 0 (0: no limit)")
        if self.max_duration_s and self.max_duration_s < self.min_duration_s:
            raise invalid_value(
                "max_duration_s", self.max_duration_s, f">= min_duration_s ({self.min_duration_s:g}) or 0"
            )
        if self.min_queries is not None:
            check_positive_int("min_queries", self.min_queries)
        if self.expected_latency_ms is not None:
            _check_number("expected_latency_ms", self.expected_latency_ms, 0, False, "a number of milliseconds > 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise invalid_value("seed", self.seed, "a whole number >= 0")
        for name in ("official", "accuracy"):
            if not isinstance(getattr(self, name), bool):
                raise invalid_value(name, getattr(self, name), "true or false")
        check_positive_int("search_steps", self.search_steps)

    def run_length(self, scenario: str) -> tuple[float, int, float]:
        """(min duration s, min query count, max duration s or 0) in force for `scenario`."""
        if self.official:
            return OFFICIAL_MIN_DURATION_S, OFFICIAL_MIN_QUERIES[scenario], 0.0
        return self.min_duration_s, self.min_queries or QUICK_MIN_QUERIES[scenario], self.max_duration_s

    @classmethod
    def from_dict(cls, data: Any, where: str = "measure.loadgen") -> "LoadGenSettings":
        if isinstance(data, LoadGenSettings):
            return data
        if not isinstance(data, Mapping):
            raise invalid_value(where, data, "a table of LoadGen settings")
        return _settings_from_mapping(cls, data, where)


def _settings_from_mapping(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """A settings dataclass from a table: unknown keys and bad values name `where` and the key."""
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise invalid_value(f"{where}.{key}", key, f"a key among {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except UsageError as exc:
        raise UsageError(f"{where}.{exc}") from None


@dataclass(frozen=True)
class MeasureSettings:
    """How long to warm up and how long to measure one cell.

    Warm-up: at least `warmup_iterations` calls and `warmup_time_s` seconds; then, unless `warmup_window` is 0,
    windows of `warmup_window` calls until two consecutive window medians each differ from the previous one by
    less than `warmup_tolerance` (the process is warm), or `warmup_max_time_s` passes (recorded as not stable).

    Timed loop: runs until `min_iterations` calls and `min_time_s` seconds are met *and*, unless `ci_target` is
    0, the 95% interval of the median is within +-`ci_target` of it (checked on a geometric schedule, from 30
    samples, every x1.5); it stops anyway at `max_iterations` or `max_time_s` (recorded as not converged).
    `timeout_s` bounds the whole worker process (import, build, warm-up and measurement); a worker past it is
    killed and the cell recorded as failed. `loadgen` applies to cells of a LoadGen scenario only.
    """

    warmup_iterations: int = 3
    warmup_time_s: float = 1.0
    warmup_window: int = 5
    warmup_tolerance: float = 0.02
    warmup_max_time_s: float = 20.0
    min_iterations: int = 10
    min_time_s: float = 2.0
    ci_target: float = 0.01
    max_iterations: int = 10_000
    max_time_s: float = 60.0
    timeout_s: float = 900.0
    loadgen: LoadGenSettings = field(default_factory=LoadGenSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "loadgen", LoadGenSettings.from_dict(self.loadgen, where="loadgen"))
        for name in ("warmup_iterations", "warmup_window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise invalid_value(name, value, "a whole number >= 0")
        for name in ("min_iterations", "max_iterations"):
            check_positive_int(name, getattr(self, name))
        for name in ("warmup_time_s", "min_time_s", "ci_target", "warmup_tolerance"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise invalid_value(name, value, "a number of seconds >= 0" if name.endswith("_s") else "a number >= 0")
        for name in ("max_time_s", "timeout_s", "warmup_max_time_s"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
                or (not 0 < value <= MAX_TIMEOUT_S)
            ):
                raise invalid_value(name, value, f"a number of seconds > 0 and <= {MAX_TIMEOUT_S:,g} (a week)")
        if self.max_iterations < self.min_iterations:
            raise invalid_value("max_iterations", self.max_iterations, f">= min_iterations ({self.min_iterations})")
        if self.ci_target >= 1:
            raise invalid_value("ci_target", self.ci_target, "a fraction below 1 (0.01 = +-1%; 0 = no target)")
        if self.max_time_s < self.min_time_s:
            raise invalid_value("max_time_s", self.max_time_s, f">= min_time_s ({self.min_time_s})")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "measure") -> "MeasureSettings":
        return _settings_from_mapping(cls, data, where)
