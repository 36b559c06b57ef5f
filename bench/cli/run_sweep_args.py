"""`bench run`'s sweep from its flags: the matrix flags (models, backends, precisions, sizes, options, loads),
measurement and LoadGen settings, merged over a sweep file or the default suite. Parsing only."""

from __future__ import annotations

import argparse
from importlib import resources
from typing import Any

from bench.cli.common import (
    parse_number,
)
from bench.core.errors import UsageError, invalid_value
from bench.core.settings import MeasureSettings
from bench.core.spec import PRECISIONS, SCENARIOS
from bench.core.sweep import (
    Sweep,
    load_sweep,
    matrix_from_mapping,
    parse_choice_list,
    parse_int_list,
    parse_name_list,
    parse_option_flags,
)

_MEASURE_FLAGS = {
    "warmup_iterations": "--warmup-iterations",
    "warmup_time_s": "--warmup-time",
    "warmup_window": "--warmup-window",
    "warmup_max_time_s": "--warmup-max-time",
    "min_iterations": "--min-iterations",
    "min_time_s": "--min-time",
    "ci_target": "--ci-target",
    "max_iterations": "--max-iterations",
    "max_time_s": "--max-time",
    "timeout_s": "--timeout",
}


_LOADGEN_FLAGS = {
    "min_duration_s": ("--lg-min-duration", float),
    "min_queries": ("--lg-min-queries", int),
    "max_duration_s": ("--lg-max-duration", float),
    "expected_latency_ms": ("--lg-expected-latency", float),
    "seed": ("--lg-seed", int),
    "search_steps": ("--lg-search-steps", int),
}


def _loadgen_settings(args: argparse.Namespace, base: dict[str, Any]) -> dict[str, Any]:
    """The sweep's LoadGen settings with the command line's --lg-* flags applied (messages name the flag)."""
    from bench.core.settings import LoadGenSettings

    values = dict(base)
    for name, (flag, kind) in _LOADGEN_FLAGS.items():
        raw = getattr(args, "lg_" + name)
        if raw is not None:
            values[name] = parse_number(flag, raw, kind)
    if args.lg_official:
        values["official"] = True
    if args.lg_no_accuracy:
        values["accuracy"] = False
    try:
        LoadGenSettings(**values)
    except UsageError as exc:
        message = str(exc)
        for name, (flag, _) in _LOADGEN_FLAGS.items():
            if message.startswith(name + ":"):
                message = flag + message[len(name) :]
        raise UsageError(message) from None
    return values


def _measure_settings(args: argparse.Namespace, base: MeasureSettings) -> MeasureSettings:
    values = base.to_dict()
    values["loadgen"] = _loadgen_settings(args, values["loadgen"])
    for name, flag in _MEASURE_FLAGS.items():
        raw = getattr(args, name)
        if raw is not None:
            values[name] = parse_number(flag, raw, int if name.endswith(("iterations", "window")) else float)
    try:
        return MeasureSettings(**values)
    except UsageError as exc:
        message = str(exc)
        for name, flag in _MEASURE_FLAGS.items():
            if message.startswith(name + ":"):
                message = flag + message[len(name) :]
        raise UsageError(message) from None


def _matrix_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The matrix keys given on the command line, parsed and checked, in the TOML file's vocabulary."""
    given: dict[str, Any] = {}
    if args.model:
        given["model"] = list(parse_name_list("--model", args.model))
    if args.backend:
        given["backend"] = list(parse_name_list("--backend", args.backend))
    if args.precision:
        given["precision"] = list(parse_choice_list("--precision", args.precision, PRECISIONS))
    if args.weights is not None:
        if not args.weights.strip():
            raise UsageError("--weights: '' is not allowed; expected a directory with config.json and *.safetensors")
        given["weights"] = args.weights
    for key, flag in (
        ("batch_size", "--batch-size"),
        ("seq_len", "--seq-len"),
        ("new_tokens", "--new-tokens"),
        ("threads", "--threads"),
    ):
        raw = getattr(args, key)
        if raw:
            given[key] = list(parse_int_list(flag, raw))
    if args.option:
        given["options"] = parse_option_flags("--option", args.option)
        if "threads" in given and "threads" in given["options"]:
            raise UsageError("--threads: given twice (also as -O threads=...); give it once")
    if args.scenario:
        given["scenario"] = list(parse_choice_list("--scenario", args.scenario, SCENARIOS))
    load = _load_flags(args)
    if load:
        given["load"] = load
    if args.profile:
        if "profile" in given.get("options", {}):
            raise UsageError("--profile: given twice (also as -O profile=...); give it once")
        given.setdefault("options", {})["profile"] = list(parse_name_list("--profile", args.profile))
    return given


_LOAD_FLAGS = {
    "target_qps": "--target-qps",
    "latency_ms": "--latency-bound",
    "ttft_ms": "--ttft-bound",
    "tpot_ms": "--tpot-bound",
}


def _load_flags(args: argparse.Namespace) -> dict[str, list[Any]]:
    """Server parameters from the command line: numbers > 0 (target_qps also "max"), comma lists allowed."""
    from bench.core.spec import SEARCH_QPS
    from bench.core.sweep import parse_option_value

    load: dict[str, list[Any]] = {}
    for key, flag in _LOAD_FLAGS.items():
        raw = getattr(args, key)
        if not raw:
            continue
        values = []
        for text in (part.strip() for item in raw for part in item.split(",")):
            try:
                value = parse_option_value(text)
            except UsageError:
                raise invalid_value(flag, text, "a finite number > 0") from None
            if key == "target_qps" and value == SEARCH_QPS:
                values.append(value)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                extra = f' or "{SEARCH_QPS}"' if key == "target_qps" else ""
                raise invalid_value(flag, text, f"a number > 0{extra}")
            values.append(value)
        load[key] = values
    return load


def default_suite() -> Sweep:
    from bench.core.sweep import sweep_from_mapping
    from bench.core.tomlfile import parse_toml

    raw = resources.files("bench").joinpath("suites/default.toml").read_bytes()
    return sweep_from_mapping(parse_toml(raw, "default suite", "bench/suites/default.toml"), where="default suite")


def build_sweep(args: argparse.Namespace) -> tuple[Sweep, bool]:
    """The sweep to run and whether it is the default suite."""
    flags = _matrix_flags(args)
    if args.sweep:
        sweep = load_sweep(args.sweep)
        if flags:  # command-line values replace those keys in every matrix of the file
            matrices = tuple(
                matrix_from_mapping(_with_flags(_matrix_as_mapping(m), flags), where="command line")
                for m in sweep.matrices
            )
            sweep = Sweep(matrices, sweep.measure)
        return Sweep(sweep.matrices, _measure_settings(args, sweep.measure)), False
    if not flags:
        suite = default_suite()
        return Sweep(suite.matrices, _measure_settings(args, suite.measure)), True
    if "model" not in flags:
        raise UsageError("--model: missing; name at least one model (see `bench list`), or give a SWEEP.toml")
    matrix = matrix_from_mapping({"backend": ["cpu"], **flags}, where="command line")
    return Sweep((matrix,), _measure_settings(args, MeasureSettings())), False


def _matrix_as_mapping(matrix) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": list(matrix.models),
        "backend": list(matrix.backends),
        **({"precision": list(matrix.precisions)} if matrix.precisions else {}),
        "batch_size": list(matrix.batch_sizes),
        "seq_len": list(matrix.seq_lens),
    }
    if matrix.weights:
        data["weights"] = matrix.weights
    tokens = [n for n in matrix.new_tokens if n is not None]
    if tokens:
        data["new_tokens"] = tokens
    axes = _axes_of(matrix.options)  # the matrix holds the product of its option axes; recover the axes
    if matrix.scenarios != ("latency",):
        data["scenario"] = list(matrix.scenarios)
    load = _axes_of(matrix.loads)
    if load:
        data["load"] = load
    if "threads" in axes:
        data["threads"] = axes.pop("threads")
    if axes:
        data["options"] = axes
    return data


def _axes_of(sets) -> dict[str, list[Any]]:
    """{key: [values]} from a product of (key, value) sets."""
    axes: dict[str, list[Any]] = {}
    for pairs in sets:
        for key, value in pairs:
            if value not in axes.setdefault(key, []):
                axes[key].append(value)
    return axes


def _with_flags(mapping: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """A sweep file's matrix with the command line's keys replacing its own; options and load merge key by key."""
    merged = {**mapping, **flags}
    for table in ("options", "load"):
        if table in flags:
            merged[table] = {**mapping.get(table, {}), **flags[table]}
    return merged
