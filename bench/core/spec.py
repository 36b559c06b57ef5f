"""What to measure: the cell identity (`BenchmarkSpec`), how to measure it (`MeasureSettings`), and sweeps.

A `BenchmarkSpec` is frozen and hashable; it is the identity of one cell of a sweep and the key that
`--resume` and comparisons pair records by. It validates the shape of its own fields at construction (types,
ranges, known precisions) and nothing else: whether a workload or backend of that name exists is a question
for the registries, asked when a sweep is planned (`bench.runs.plan`), so that a stored record can always be read
back even after the catalogue changes.

Sweeps are a list of matrices; each matrix is the Cartesian product of its value lists. A sweep can come from
the command line (comma lists, repeated flags) or a TOML file of the same shape::

    [measure]
    min_time_s = 2.0

    [[matrix]]
    model = ["bert-base", "gpt2"]
    backend = ["cpu"]
    precision = ["fp32", "bf16"]
    batch_size = [1, 8]
    seq_len = [128]
    new_tokens = [32]      # causal LMs only; ignored for other tasks
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from bench.core.errors import UsageError, invalid_value
from bench.core.scenarios import LOAD_KEYS, LOADGEN_SCENARIOS, SCENARIOS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "PRECISIONS",
    "SCENARIOS",
    "LOAD_KEYS",
    "ALL_BACKENDS",
    "LoadGenSettings",
    "BenchmarkSpec",
    "MeasureSettings",
    "Matrix",
    "Sweep",
    "parse_int_list",
    "parse_choice_list",
    "parse_name_list",
    "load_sweep",
]

#: Every precision name the harness knows. A backend declares the subset it supports.
#: "served": whatever a remote serving engine runs (not set by the harness; the `openai` backend).
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "fp8", "int4", "served")

# Scenario names and their load parameters come from the one scenario registry (bench.core.scenarios).

#: The value of target_qps that asks for a search of the highest Server rate that stays VALID.
SEARCH_QPS = "max"

#: The backend wildcard: every registered backend that is available on this machine.
ALL_BACKENDS = "*"

OptionValue = str | int | float | bool


#: Upper bounds on what one cell may ask for, so absurd input is refused at plan time instead of exhausting the
#: machine in a worker: sequences per call, tokens per sequence, a LoadGen server rate (LoadGen schedules every
#: query; far above what one host can issue it only allocates), latency bounds, a worker's timeout.
MAX_BATCH_SIZE = 65_536
MAX_TOKENS = 1 << 20
MAX_TARGET_QPS = 100_000.0
MAX_LATENCY_BOUND_MS = 3_600_000.0
MAX_TIMEOUT_S = 7 * 24 * 3600.0
MAX_SWEEP_FILE_BYTES = 1 << 20
_INT_BOUNDS = {"batch_size": MAX_BATCH_SIZE, "seq_len": MAX_TOKENS, "new_tokens": MAX_TOKENS}
_LOAD_BOUNDS = {
    "target_qps": MAX_TARGET_QPS,
    "latency_ms": MAX_LATENCY_BOUND_MS,
    "ttft_ms": MAX_LATENCY_BOUND_MS,
    "tpot_ms": MAX_LATENCY_BOUND_MS,
}


def _check_positive_int(field_name: str, value: Any) -> int:
    limit = _INT_BOUNDS.get(field_name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (limit and value > limit):
        raise invalid_value(
            field_name, value, f"a whole number from 1 to {limit:,}" if limit else "a whole number >= 1"
        )
    return value


def _check_name(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid_value(field_name, value, "a non-empty name")
    return value.strip()


def _normalise_load(scenario: str, value: Any) -> tuple[tuple[str, OptionValue], ...]:
    """Scenario parameters as sorted pairs, each checked: a known key for the scenario, a number > 0 (or "max")."""
    pairs = _normalise_options(value, field_name="load")
    allowed = LOAD_KEYS.get(scenario, ())
    for key, val in pairs:
        if key not in allowed:
            expected = f"one of {', '.join(allowed)}" if allowed else "none (only the server scenario takes any)"
            raise UsageError(f"load.{key}: {key!r} is not a parameter of scenario {scenario}; expected {expected}")
        if key == "target_qps" and val == SEARCH_QPS:
            continue
        limit = _LOAD_BOUNDS[key]
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not math.isfinite(val) or not 0 < val <= limit:
            extra = f' or "{SEARCH_QPS}"' if key == "target_qps" else ""
            raise invalid_value(f"load.{key}", val, f"a number > 0 and <= {limit:,g}{extra}")
    return pairs


def _normalise_options(value: Any, field_name: str = "options") -> tuple[tuple[str, OptionValue], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [(str(k), v) for k, v in items]
    except (TypeError, ValueError):
        raise invalid_value(field_name, value, "a mapping of name to value") from None
    for key, val in pairs:
        if not isinstance(val, (str, int, float, bool)):
            raise invalid_value(f"{field_name}.{key}", val, "a string, number or boolean")
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise invalid_value(field_name, value, "each name at most once")
    return tuple(sorted(pairs))


@dataclass(frozen=True)
class BenchmarkSpec:
    """The identity of one benchmark cell.

    Fields:
      workload    catalogue name, e.g. ``bert-base-uncased`` (aliases are resolved by the planner)
      backend     registry name, e.g. ``cpu``
      precision   one of PRECISIONS; the backend declares which it supports
      batch_size  sequences (or images) per call
      seq_len     prompt / input tokens per sequence; None for image workloads (their size is fixed)
      new_tokens  tokens generated after the prompt, for generation workloads; None otherwise
      options     backend options as sorted (name, value) pairs, e.g. (("threads", 2),)
      weights     a local directory of real (safetensors) weights; None = the catalogue's default
      scenario    one of SCENARIOS: "latency" (the timed loop) or a LoadGen scenario
      load        the scenario's parameters as sorted (name, value) pairs (LOAD_KEYS), e.g. (("target_qps", 20),)

    For LoadGen scenarios `batch_size` is the most samples the system under test runs as one batch: it must be 1
    for single-stream, and it is the samples per query for multi-stream (MLPerf uses 8).
    """

    workload: str
    backend: str
    precision: str = "fp32"
    batch_size: int = 1
    seq_len: int | None = 128
    new_tokens: int | None = None
    options: tuple[tuple[str, OptionValue], ...] = ()
    weights: str | None = None
    scenario: str = "latency"
    load: tuple[tuple[str, OptionValue], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "workload", _check_name("model", self.workload))
        if self.scenario not in SCENARIOS:
            raise invalid_value("scenario", self.scenario, SCENARIOS)
        object.__setattr__(self, "load", _normalise_load(self.scenario, self.load))
        if self.scenario == "server" and "target_qps" not in dict(self.load):
            raise UsageError(
                "load.target_qps: missing; the server scenario needs a rate (--target-qps N, or "
                f"{SEARCH_QPS} to search for the highest one that stays valid)"
            )
        object.__setattr__(self, "backend", _check_name("backend", self.backend))
        if self.precision not in PRECISIONS:
            raise invalid_value("precision", self.precision, PRECISIONS)
        _check_positive_int("batch_size", self.batch_size)
        if self.seq_len is not None:
            _check_positive_int("seq_len", self.seq_len)
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights):
            raise invalid_value("weights", self.weights, "a directory path")
        if self.new_tokens is not None:
            _check_positive_int("new_tokens", self.new_tokens)
        object.__setattr__(self, "options", _normalise_options(self.options))

    def option(self, name: str, default: OptionValue | None = None) -> OptionValue | None:
        """The value of one backend option, or `default` when the spec does not set it."""
        return dict(self.options).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form; `options` becomes a dict."""
        data = dataclasses.asdict(self)
        data["options"] = dict(self.options)
        data["load"] = dict(self.load)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BenchmarkSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        # a newer minor version may add an optional field; left at null it names the same cell, so it is ignored
        unknown = sorted(k for k, v in data.items() if k not in known and v is not None)
        if unknown:
            raise invalid_value("spec", unknown[0], sorted(known))
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def key(self) -> str:
        """A stable 16-hex-digit digest of the spec; records and resume pair cells by it.

        Fields that are None (or, for scenario and load, at their defaults) are left out of the digest, so adding
        an optional field later keeps old keys."""
        present = {k: v for k, v in self.to_dict().items() if v is not None}
        if self.scenario == "latency":
            present.pop("scenario")
        if not self.load:
            present.pop("load")
        canonical = json.dumps(present, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """A short human label, e.g. ``gpt2 cpu fp32 b=1 s=128 new=32 threads=2``."""
        parts = [self.workload, self.backend, self.precision, f"b={self.batch_size}"]
        if self.seq_len is not None:
            parts.append(f"s={self.seq_len}")
        if self.new_tokens is not None:
            parts.append(f"new={self.new_tokens}")
        parts += [f"{k}={v}" for k, v in self.options]
        if self.weights:
            parts.append(f"weights={self.weights}")
        if self.scenario != "latency":
            parts.append(f"scenario={self.scenario}")
        parts += [f"{k}={v}" for k, v in self.load]
        return " ".join(parts)


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
            _check_positive_int("min_queries", self.min_queries)
        if self.expected_latency_ms is not None:
            _check_number("expected_latency_ms", self.expected_latency_ms, 0, False, "a number of milliseconds > 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise invalid_value("seed", self.seed, "a whole number >= 0")
        for name in ("official", "accuracy"):
            if not isinstance(getattr(self, name), bool):
                raise invalid_value(name, getattr(self, name), "true or false")
        _check_positive_int("search_steps", self.search_steps)

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
            _check_positive_int(name, getattr(self, name))
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


@dataclass(frozen=True)
class Matrix:
    """One Cartesian product of value lists; `cells()` expands it in a stable order."""

    models: tuple[str, ...]
    backends: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ()  # empty: each backend's default (its first declared precision; fp32 measured)
    batch_sizes: tuple[int, ...] = (1,)
    seq_lens: tuple[int, ...] = (128,)
    new_tokens: tuple[int | None, ...] = (None,)
    options: tuple[tuple[tuple[str, OptionValue], ...], ...] = ((),)
    weights: str | None = None
    scenarios: tuple[str, ...] = ("latency",)
    loads: tuple[tuple[tuple[str, OptionValue], ...], ...] = ((),)

    def size(self) -> int:
        """How many cells `cells()` would make, without making them."""
        size = 1
        for axis in (
            self.models,
            self.backends,
            self.precisions,
            self.batch_sizes,
            self.seq_lens,
            self.new_tokens,
            self.options,
            self.scenarios,
            self.loads,
        ):
            size *= max(1, len(axis)) if axis is self.precisions else len(axis)
        return size

    def cells(self) -> list[BenchmarkSpec]:
        return [
            BenchmarkSpec(m, b, p, bs, s, n, o, self.weights, sc, load)
            for m in self.models
            for b in self.backends
            for p in self.precisions or ("fp32",)  # the planner gives each backend its own default instead
            for bs in self.batch_sizes
            for s in self.seq_lens
            for n in self.new_tokens
            for o in self.options
            for sc in self.scenarios
            for load in self.loads_for(sc)
        ]

    def loads_for(self, scenario: str) -> list[tuple[tuple[str, OptionValue], ...]]:
        """The matrix's scenario-parameter sets restricted to the keys `scenario` takes (others ignored, as
        new_tokens is for workloads that do not generate), without duplicates."""
        allowed = LOAD_KEYS.get(scenario, ())
        return list(dict.fromkeys(tuple((k, v) for k, v in load if k in allowed) for load in self.loads))


@dataclass(frozen=True)
class Sweep:
    """Matrices plus the measurement settings that apply to all their cells."""

    matrices: tuple[Matrix, ...]
    measure: MeasureSettings = field(default_factory=MeasureSettings)


# ---------------------------------------------------------------------------------------------------------
# Parsing value lists (shared by the CLI and the TOML loader, so both give the same messages)


def _split(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(value, str):
            out += [part.strip() for part in value.split(",")]
        else:
            out.append(value)
    return out


def parse_name_list(field_name: str, values: Iterable[Any]) -> tuple[str, ...]:
    """Names from repeated flags or comma lists, duplicates dropped, order kept."""
    names = _split(values)
    for name in names:
        if not isinstance(name, str) or not name:
            raise invalid_value(field_name, name, "a non-empty name")
    if not names:
        raise invalid_value(field_name, "", "at least one name")
    return tuple(dict.fromkeys(names))


def parse_choice_list(field_name: str, values: Iterable[Any], allowed: Sequence[str]) -> tuple[str, ...]:
    """Names from flags or comma lists, each one of `allowed`."""
    names = parse_name_list(field_name, values)
    for name in names:
        if name not in allowed:
            raise invalid_value(field_name, name, allowed)
    return names


def parse_int_list(field_name: str, values: Iterable[Any], minimum: int = 1) -> tuple[int, ...]:
    """Whole numbers >= `minimum` from repeated flags, comma lists or TOML integers."""
    out: list[int] = []
    for raw in _split(values):
        if isinstance(raw, bool):
            raise invalid_value(field_name, raw, f"a whole number >= {minimum}")
        if isinstance(raw, int):
            number = raw
        else:
            try:
                number = int(str(raw), 10)
            except ValueError:
                raise invalid_value(field_name, raw, f"a whole number >= {minimum}") from None
        if number < minimum:
            raise invalid_value(field_name, raw, f"a whole number >= {minimum}")
        out.append(number)
    if not out:
        raise invalid_value(field_name, "", "at least one whole number")
    return tuple(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------------------------
# TOML sweep files

_MATRIX_KEYS = {
    "model": "models",
    "backend": "backends",
    "precision": "precisions",
    "batch_size": "batch_sizes",
    "seq_len": "seq_lens",
    "new_tokens": "new_tokens",
    "threads": "threads",
    "options": "options",
    "weights": "weights",
    "scenario": "scenarios",
    "load": "loads",
}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def matrix_from_mapping(data: Mapping[str, Any], where: str) -> Matrix:
    """Build a `Matrix` from a TOML table (or the CLI's equivalent dict), naming `where` in errors."""
    for key in data:
        if key not in _MATRIX_KEYS:
            raise invalid_value(f"{where}.{key}", key, f"a key among {', '.join(_MATRIX_KEYS)}")
    if "model" not in data:
        raise UsageError(f"{where}.model: missing; every matrix names at least one model")
    kwargs: dict[str, Any] = {"models": parse_name_list(f"{where}.model", _as_list(data["model"]))}
    if "backend" in data:
        kwargs["backends"] = parse_name_list(f"{where}.backend", _as_list(data["backend"]))
    if "precision" in data:
        kwargs["precisions"] = parse_choice_list(f"{where}.precision", _as_list(data["precision"]), PRECISIONS)
    for key in ("batch_size", "seq_len", "new_tokens"):
        if key in data:
            kwargs[_MATRIX_KEYS[key]] = parse_int_list(f"{where}.{key}", _as_list(data[key]))
    if "weights" in data:
        if not isinstance(data["weights"], str) or not data["weights"]:
            raise invalid_value(f"{where}.weights", data["weights"], "a directory path")
        kwargs["weights"] = data["weights"]
    base_options = data.get("options", {})
    if not isinstance(base_options, Mapping):
        raise invalid_value(f"{where}.options", base_options, "a table of option = value (or = [values])")
    axes = {str(k): _as_list(v) for k, v in base_options.items()}
    if "threads" in data:
        axes["threads"] = list(parse_int_list(f"{where}.threads", _as_list(data["threads"])))
    kwargs["options"] = option_sets(axes, where)
    if "scenario" in data:
        kwargs["scenarios"] = parse_choice_list(f"{where}.scenario", _as_list(data["scenario"]), SCENARIOS)
    kwargs["loads"] = load_sets(data.get("load", {}), where)
    return Matrix(**kwargs)


def load_sets(load: Any, where: str) -> tuple[tuple[tuple[str, OptionValue], ...], ...]:
    """Every combination of scenario-parameter values, e.g. {"target_qps": [5, 10]} -> 2 sets; keys checked."""
    if not isinstance(load, Mapping):
        raise invalid_value(f"{where}.load", load, "a table of parameter = value (or = [values])")
    known = sorted({key for keys in LOAD_KEYS.values() for key in keys})
    for key in load:
        if key not in known:
            raise invalid_value(f"{where}.load.{key}", key, f"a key among {', '.join(known)}")
    return option_sets({str(k): _as_list(v) for k, v in load.items()}, where, field_name="load")


def option_sets(
    axes: Mapping[str, list[Any]], where: str, field_name: str = "options"
) -> tuple[tuple[tuple[str, OptionValue], ...], ...]:
    """Every combination of option values: {"compile": ["none", "default"], "threads": [1, 2]} -> 4 option sets."""
    import itertools

    for key, values in axes.items():
        if not values:
            raise invalid_value(f"{where}.{field_name}.{key}", [], "at least one value")
    names = list(axes)
    sets = []
    for combo in itertools.product(*(axes[n] for n in names)):
        try:
            sets.append(_normalise_options(dict(zip(names, combo)), field_name=field_name))
        except UsageError as exc:
            raise UsageError(f"{where}.{exc}") from None
    return tuple(dict.fromkeys(sets))


def parse_option_value(raw: str) -> OptionValue:
    """A command-line option value: true/false -> bool, whole number -> int, number -> float, else the string."""
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw.strip()


def parse_option_flags(flag: str, raw_values: Sequence[str]) -> dict[str, list[OptionValue]]:
    """Repeated `--option KEY=V1[,V2...]` flags -> {KEY: [values]} (each key once)."""
    axes: dict[str, list[OptionValue]] = {}
    for raw in raw_values:
        key, sep, values = raw.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise invalid_value(flag, raw, "KEY=VALUE[,VALUE...], e.g. compile=default or provider=cpu")
        if key in axes:
            raise invalid_value(flag, raw, f"each option once (give {key}=A,B for several values)")
        axes[key] = [parse_option_value(v) for v in values.split(",") if v.strip()]
    return axes


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep TOML file; any problem becomes a one-line `UsageError` naming the file and field."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:  # bounded: a device or a huge file is refused, never read to the end
            raw = fh.read(MAX_SWEEP_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"sweep file {str(path)!r}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_SWEEP_FILE_BYTES:
        raise UsageError(
            f"sweep file {str(path)!r}: more than {MAX_SWEEP_FILE_BYTES // 1024} KiB is not allowed; "
            "expected a small TOML file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"sweep file {str(path)!r}: not UTF-8 text (byte {exc.start}); expected TOML") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise UsageError(f"sweep file {str(path)!r}: not valid TOML: {str(exc)[:200]}") from None
    return sweep_from_mapping(data, where=path.name)


def sweep_from_mapping(data: Mapping[str, Any], where: str) -> Sweep:
    allowed = {"measure", "matrix"} | set(_MATRIX_KEYS)
    for key in data:
        if key not in allowed:
            raise invalid_value(f"{where}: {key}", key, f"a key among {', '.join(sorted(allowed))}")
    measure_data = data.get("measure", {})
    if not isinstance(measure_data, Mapping):
        raise invalid_value(f"{where}: measure", measure_data, "a [measure] table")
    measure = MeasureSettings.from_dict(measure_data, where=f"{where}: measure")
    tables = data.get("matrix", [])
    if not isinstance(tables, list) or not all(isinstance(t, Mapping) for t in tables):
        raise invalid_value(f"{where}: matrix", tables, "[[matrix]] tables")
    top = {k: v for k, v in data.items() if k in _MATRIX_KEYS}
    matrices = [matrix_from_mapping(top, f"{where}: (top level)")] if top else []
    matrices += [matrix_from_mapping(t, f"{where}: matrix[{i}]") for i, t in enumerate(tables)]
    if not matrices:
        raise UsageError(f"{where}: no cells: give model = [...] at the top level or [[matrix]] tables")
    return Sweep(tuple(matrices), measure)
