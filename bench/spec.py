"""What to measure: the cell identity (`BenchmarkSpec`), how to measure it (`MeasureSettings`), and sweeps.

A `BenchmarkSpec` is frozen and hashable; it is the identity of one cell of a sweep and the key that
`--resume` and comparisons pair records by. It validates the shape of its own fields at construction (types,
ranges, known precisions) and nothing else: whether a workload or backend of that name exists is a question
for the registries, asked when a sweep is planned (`bench.plan`), so that a stored record can always be read
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

from bench.errors import UsageError, invalid_value

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "PRECISIONS",
    "ALL_BACKENDS",
    "BenchmarkSpec",
    "MeasureSettings",
    "Matrix",
    "Sweep",
    "parse_int_list",
    "parse_name_list",
    "load_sweep",
]

#: Every precision name the harness knows. A backend declares the subset it supports.
PRECISIONS = ("fp32", "bf16", "fp16", "int8")

#: The backend wildcard: every registered backend that is available on this machine.
ALL_BACKENDS = "*"

OptionValue = str | int | float | bool


def _check_positive_int(field_name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise invalid_value(field_name, value, "a whole number >= 1")
    return value


def _check_name(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid_value(field_name, value, "a non-empty name")
    return value.strip()


def _normalise_options(value: Any) -> tuple[tuple[str, OptionValue], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = [(str(k), v) for k, v in items]
    except (TypeError, ValueError):
        raise invalid_value("options", value, "a mapping of option name to value") from None
    for key, val in pairs:
        if not isinstance(val, (str, int, float, bool)):
            raise invalid_value(f"options.{key}", val, "a string, number or boolean")
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        raise invalid_value("options", value, "each option at most once")
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
    """

    workload: str
    backend: str
    precision: str = "fp32"
    batch_size: int = 1
    seq_len: int | None = 128
    new_tokens: int | None = None
    options: tuple[tuple[str, OptionValue], ...] = ()
    weights: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "workload", _check_name("model", self.workload))
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
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BenchmarkSpec":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise invalid_value("spec", unknown[0], sorted(known))
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def key(self) -> str:
        """A stable 16-hex-digit digest of the spec; records and resume pair cells by it.

        Fields that are None are left out of the digest, so adding an optional field later keeps old keys."""
        present = {k: v for k, v in self.to_dict().items() if v is not None}
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
        return " ".join(parts)


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
    killed and the cell recorded as failed.
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

    def __post_init__(self) -> None:
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
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise invalid_value(name, value, "a number of seconds > 0")
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
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise invalid_value(f"{where}.{key}", key, f"a key among {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except UsageError as exc:
            raise UsageError(f"{where}.{exc}") from None


@dataclass(frozen=True)
class Matrix:
    """One Cartesian product of value lists; `cells()` expands it in a stable order."""

    models: tuple[str, ...]
    backends: tuple[str, ...] = ("cpu",)
    precisions: tuple[str, ...] = ("fp32",)
    batch_sizes: tuple[int, ...] = (1,)
    seq_lens: tuple[int, ...] = (128,)
    new_tokens: tuple[int | None, ...] = (None,)
    options: tuple[tuple[tuple[str, OptionValue], ...], ...] = ((),)
    weights: str | None = None

    def cells(self) -> list[BenchmarkSpec]:
        return [
            BenchmarkSpec(m, b, p, bs, s, n, o, self.weights)
            for m in self.models
            for b in self.backends
            for p in self.precisions
            for bs in self.batch_sizes
            for s in self.seq_lens
            for n in self.new_tokens
            for o in self.options
        ]


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
        precisions = parse_name_list(f"{where}.precision", _as_list(data["precision"]))
        for p in precisions:
            if p not in PRECISIONS:
                raise invalid_value(f"{where}.precision", p, PRECISIONS)
        kwargs["precisions"] = precisions
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
    return Matrix(**kwargs)


def option_sets(axes: Mapping[str, list[Any]], where: str) -> tuple[tuple[tuple[str, OptionValue], ...], ...]:
    """Every combination of option values: {"compile": ["none", "default"], "threads": [1, 2]} -> 4 option sets."""
    import itertools

    for key, values in axes.items():
        if not values:
            raise invalid_value(f"{where}.options.{key}", [], "at least one value")
    names = list(axes)
    sets = []
    for combo in itertools.product(*(axes[n] for n in names)):
        try:
            sets.append(_normalise_options(dict(zip(names, combo))))
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
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"sweep file {str(path)!r}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"sweep file {str(path)!r}: not valid TOML: {exc}") from None
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
