"""Sweeps: a list of matrices, each the Cartesian product of its value lists, from the command line (comma
lists, repeated flags) or a TOML file of the same shape::

    [measure]
    min_time_s = 2.0

    [[matrix]]
    model = ["bert-base", "gpt2"]
    backend = ["cpu"]
    precision = ["fp32", "bf16"]
    batch_size = [1, 8]
    seq_len = [128]
    new_tokens = [32]      # causal LMs only; ignored for other tasks

Value lists are parsed and checked here (names, numbers, options, loads); whether a name exists in a registry
is asked when the sweep is planned (`bench.runs.plan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from bench.core.errors import UsageError, invalid_value
from bench.core.scenarios import LOAD_KEYS, SCENARIOS
from bench.core.settings import MeasureSettings
from bench.core.spec import PRECISIONS, BenchmarkSpec, OptionValue, normalise_options
from bench.core.tomlfile import read_toml

__all__ = [
    "Matrix",
    "Sweep",
    "parse_int_list",
    "parse_choice_list",
    "parse_name_list",
    "parse_option_value",
    "parse_option_flags",
    "matrix_from_mapping",
    "sweep_from_mapping",
    "option_sets",
    "load_sets",
    "load_sweep",
]


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
            sets.append(normalise_options(dict(zip(names, combo)), field_name=field_name))
        except UsageError as exc:
            raise UsageError(f"{where}.{exc}") from None
    return tuple(dict.fromkeys(sets))


def parse_option_value(raw: str) -> OptionValue:
    """A command-line option value: true/false -> bool, whole number -> int, number -> float, else the string.
    A non-finite number (nan, inf) is refused here, before it can reach a record."""
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        return raw.strip()
    if not math.isfinite(number):
        raise UsageError(f"{raw.strip()!r} is not allowed; expected a finite number")
    return number


def parse_option_flags(flag: str, raw_values: Sequence[str]) -> dict[str, list[OptionValue]]:
    """Repeated `--option KEY=V1[,V2...]` flags -> {KEY: [values]} (each key once). A value that starts with
    `{` or `[` (JSON, e.g. `extra_body={"a": 1, "b": 2}`) is one value: its commas do not split it."""
    axes: dict[str, list[OptionValue]] = {}
    for raw in raw_values:
        key, sep, values = raw.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise invalid_value(flag, raw, "KEY=VALUE[,VALUE...], e.g. compile=default or provider=cpu")
        if key in axes:
            raise invalid_value(flag, raw, f"each option once (give {key}=A,B for several values)")
        try:
            pieces = [values] if values.strip()[:1] in ("{", "[") else values.split(",")
            axes[key] = [parse_option_value(v) for v in pieces if v.strip()]
        except UsageError as exc:
            raise UsageError(f"{flag}: {key}: {exc}") from None
    return axes


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep TOML file; any problem becomes a one-line `UsageError` naming the file and field."""
    data = read_toml(Path(path), "sweep file")
    return sweep_from_mapping(data, where=Path(path).name)


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
