"""What to measure: the cell identity (`BenchmarkSpec`). How to measure is `bench.core.settings`; sweeps of
cells are `bench.core.sweep`.

A `BenchmarkSpec` is frozen and hashable; it is the identity of one cell of a sweep and the key that
`--resume` and comparisons pair records by. It validates the shape of its own fields at construction (types,
ranges, known precisions) and nothing else: whether a workload or backend of that name exists is a question
for the registries, asked when a sweep is planned (`bench.runs.plan`), so that a stored record can always be read
back even after the catalogue changes.

"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.core.scenarios import LOAD_KEYS, SCENARIOS
from bench.core.secrets import redact_urls_in
from bench.core.vocabulary import PRECISIONS as DTYPE_PRECISIONS

__all__ = ["PRECISIONS", "SCENARIOS", "LOAD_KEYS", "ALL_BACKENDS", "BenchmarkSpec", "OptionValue"]

#: Every precision name the harness knows. A backend declares the subset it supports.
#: "served": whatever a remote serving engine runs (not set by the harness; the `openai` backend).
PRECISIONS = (*DTYPE_PRECISIONS, "served")

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
_INT_BOUNDS = {"batch_size": MAX_BATCH_SIZE, "seq_len": MAX_TOKENS, "new_tokens": MAX_TOKENS}
_LOAD_BOUNDS = {
    "target_qps": MAX_TARGET_QPS,
    "latency_ms": MAX_LATENCY_BOUND_MS,
    "ttft_ms": MAX_LATENCY_BOUND_MS,
    "tpot_ms": MAX_LATENCY_BOUND_MS,
}


def check_positive_int(field_name: str, value: Any) -> int:
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


def normalise_load(scenario: str, value: Any) -> tuple[tuple[str, OptionValue], ...]:
    """Scenario parameters as sorted pairs, each checked: a known key for the scenario, a number > 0 (or "max")."""
    pairs = normalise_options(value, field_name="load")
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


def normalise_options(value: Any, field_name: str = "options") -> tuple[tuple[str, OptionValue], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [(str(k), v) for k, v in items]
    except (TypeError, ValueError):
        raise invalid_value(field_name, value, "a mapping of name to value") from None
    for key, val in pairs:
        if not isinstance(val, (str, int, float, bool)):
            raise invalid_value(f"{field_name}.{key}", val, "a string, number or boolean")
        if isinstance(val, float) and not math.isfinite(val):
            raise invalid_value(f"{field_name}.{key}", val, "a finite number")
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
        object.__setattr__(self, "load", normalise_load(self.scenario, self.load))
        if self.scenario == "server" and "target_qps" not in dict(self.load):
            raise UsageError(
                "load.target_qps: missing; the server scenario needs a rate (--target-qps N, or "
                f"{SEARCH_QPS} to search for the highest one that stays valid)"
            )
        object.__setattr__(self, "backend", _check_name("backend", self.backend))
        if self.precision not in PRECISIONS:
            raise invalid_value("precision", self.precision, PRECISIONS)
        check_positive_int("batch_size", self.batch_size)
        if self.seq_len is not None:
            check_positive_int("seq_len", self.seq_len)
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights):
            raise invalid_value("weights", self.weights, "a directory path")
        if self.new_tokens is not None:
            check_positive_int("new_tokens", self.new_tokens)
        object.__setattr__(self, "options", normalise_options(self.options))

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
        parts += [f"{k}={redact_urls_in(str(v))}" for k, v in self.options]
        if self.weights:
            parts.append(f"weights={self.weights}")
        if self.scenario != "latency":
            parts.append(f"scenario={self.scenario}")
        parts += [f"{k}={v}" for k, v in self.load]
        return " ".join(parts)
