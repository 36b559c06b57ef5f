"""The types of a record's fields, by dotted path, and the check every reader runs before it derives a figure.

A record whose field does not conform is refused with the field named (`check_fields`; the store skips that line
with a warning naming line and field), so one badly typed record -- whatever a server sent -- can never make the
records around it unreadable or a table, report or DataFrame raise. A missing field reads as null; a path under a
missing or null section is not checked; keys not listed are kept unchecked (a newer minor version's additions).
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterator, Mapping

from bench.core.scenarios import LOADGEN_SCENARIOS

__all__ = ["STATUSES", "FIELD_TYPES", "check_fields"]

STATUSES = ("ok", "failed", "unavailable")

_MAX_INT = 2**63


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -_MAX_INT < v < _MAX_INT


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ns(v: Any) -> bool:
    return _is_int(v) and v >= 0


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _list_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and all(check(x) for x in v)


def _dict_of(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, dict) and all(check(x) for x in v.values())


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, bool)) or _is_number(v)


_STR = (lambda v: isinstance(v, str), "a string")
_OPT_STR = (_optional(lambda v: isinstance(v, str)), "a string or null")
_BOOL = (lambda v: isinstance(v, bool), "true or false")
_OPT_BOOL = (_optional(lambda v: isinstance(v, bool)), "true, false or null")
_DICT = (lambda v: isinstance(v, dict), "an object")
_OPT_DICT = (_optional(lambda v: isinstance(v, dict)), "an object or null")
_OPT_NUMBER = (_optional(_is_number), "a finite number or null")
_OPT_INT = (_optional(_is_int), "a whole number or null")
_NS = (_ns, "a whole number of nanoseconds >= 0")
_OPT_STRS = (_optional(_list_of(lambda v: isinstance(v, str))), "a list of strings or null")
_OPT_INTS = (_optional(_list_of(_ns)), "a list of whole numbers >= 0 or null")
_OPT_NUMBERS = (_optional(_dict_of(_is_number)), "an object of finite numbers or null")
_OPT_SCALARS = (_optional(_dict_of(_is_scalar)), "an object of numbers, strings or booleans")

FIELD_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "spec": _DICT,
    "status": (lambda v: isinstance(v, str) and v in STATUSES, f"one of {', '.join(STATUSES)}"),
    "reason": _OPT_STR,
    "simulated": _OPT_BOOL,
    "started_at": _OPT_STR,
    "finished_at": _OPT_STR,
    "detail": _OPT_STR,
    "environment": _OPT_DICT,
    "environment.fingerprint": _OPT_STR,
    "environment.hostname": _OPT_STR,
    "environment.device": _OPT_DICT,
    "model": _OPT_DICT,
    "model.technique": _OPT_STR,
    "model.weights": _OPT_STR,
    "memory": _OPT_DICT,
    "memory.peak_rss_bytes": _OPT_NUMBER,
    "memory.device_peak_allocated_bytes": _OPT_NUMBER,
    "work": _OPT_DICT,
    "work.flops_per_call": _OPT_NUMBER,
    "work.flops_per_call_analytic": _OPT_NUMBER,
    "work.min_bytes_per_call": _OPT_NUMBER,
    "accuracy": _OPT_DICT,
    "accuracy.max_abs_error": _OPT_NUMBER,
    "accuracy.cosine_similarity": _OPT_NUMBER,
    "accuracy.top1_agreement": _OPT_NUMBER,
    "accuracy.skipped": _OPT_STR,
    "measurement": _OPT_DICT,
    "measurement.samples_ns": (_list_of(lambda v: _ns(v) and v > 0), "a list of whole numbers of nanoseconds > 0"),
    "measurement.loop_wall_ns": _NS,
    "measurement.items_per_iteration": (lambda v: _is_int(v) and v >= 1, "a whole number >= 1"),
    "measurement.warmup_iterations": _NS,
    "measurement.warmup_ns": (_is_number, "a finite number"),
    "measurement.stopped_by": _STR,
    "measurement.settings": _DICT,
    "measurement.token_marks_ns": (
        _optional(_list_of(lambda v: _list_of(_ns)(v) and len(v) > 0)),
        "a list of non-empty lists of whole numbers >= 0, or null",
    ),
    "measurement.tokens_per_iteration": _OPT_INT,
    "measurement.warmup_stable": _OPT_BOOL,
    "measurement.device_samples_ns": (_optional(_list_of(_is_number)), "a list of finite numbers or null"),
    "measurement.telemetry": _OPT_DICT,
    "measurement.telemetry.energy_j": _OPT_NUMBER,
    "measurement.telemetry.power_w": _OPT_NUMBERS,
    "measurement.telemetry.throttle_reasons": _OPT_STRS,
    "measurement.host_load": _OPT_DICT,
    "measurement.host_load.others_cores": _OPT_NUMBER,
    "measurement.tokens_per_sample": _OPT_INTS,
    "measurement.timer": _OPT_STR,
    "serving": _OPT_DICT,
    "serving.server": _OPT_DICT,
    "serving.server.engine": (_optional(_dict_of(_is_scalar)), "an object of name and version, or null"),
    "serving.server.model": _OPT_STR,
    "serving.server.server_header": _OPT_STR,
    "serving.load": _OPT_DICT,
    "serving.load.concurrency": _OPT_INT,
    "serving.load.request_rate": _OPT_NUMBER,
    "serving.max_tokens": _OPT_INT,
    "serving.requests_sent": _OPT_INT,
    "serving.requests_ok": _OPT_INT,
    "serving.requests_failed": _OPT_INT,
    "serving.failure_reasons": (_optional(_dict_of(_is_int)), "an object of counts or null"),
    "serving.failures": (_optional(_list_of(lambda v: isinstance(v, dict))), "a list of objects or null"),
    "serving.output_tokens": _OPT_INTS,
    "serving.prompt_tokens": (_optional(_list_of(_optional(_ns))), "a list of whole numbers (or nulls) or null"),
    "serving.chunks": _OPT_INTS,
    "serving.duration_ns": _OPT_INT,
    "serving.slo_ms": _OPT_NUMBERS,
    "serving.server.engine_identity": (
        _optional(_dict_of(_is_scalar)),
        "an object of name, version and sources, or null",
    ),
    "serving.requests_retried": _OPT_INT,
    "serving.retry_reasons": (_optional(_dict_of(_is_int)), "an object of counts or null"),
    "serving.prompt_tokens_sent": (_optional(_list_of(_optional(_ns))), "a list of whole numbers (or nulls) or null"),
    "serving.engine_timings": (
        _optional(_list_of(_optional(_dict_of(_is_number)))),
        "a list of objects of numbers (or nulls) or null",
    ),  # fmt: skip
    "serving.request": _OPT_DICT,
    "simulation": _OPT_DICT,
    "simulation.profile": _DICT,
    "simulation.profile.key": _STR,
    "simulation.estimate": _OPT_DICT,
    **{f"simulation.estimate.{k}": _OPT_NUMBER for k in ("latency_s", "items_per_s", "ttft_s", "tpot_s")},
    **{f"simulation.estimate.output_tokens_per_s{k}": _OPT_NUMBER for k in ("", "_low", "_high")},
    "simulation.estimate.band": _OPT_DICT,
    "simulation.estimate.band.low_s": _OPT_NUMBER,
    "simulation.estimate.band.high_s": _OPT_NUMBER,
    "simulation.host_validation": _OPT_DICT,
    **{f"simulation.host_validation.{k}": _OPT_NUMBER for k in ("error", "measured_p50_s", "predicted_s")},
    "simulation.assumed_figures": _OPT_STRS,
    "simulation.cost_model_version": (_optional(_is_scalar), "a version"),
    "simulation.serving": _OPT_DICT,
    "simulation.serving.parallelism": _OPT_SCALARS,
    **{f"simulation.serving.{k}": _OPT_NUMBER for k in ("chips", "batch_per_chip", "prefill_tokens_per_s_per_chip")},
    "loadgen": _OPT_DICT,
    "loadgen.scenario": (
        lambda v: isinstance(v, str) and v in LOADGEN_SCENARIOS,
        f"one of {', '.join(LOADGEN_SCENARIOS)}",
    ),
    "loadgen.validity": _OPT_STR,
    "loadgen.invalid_reasons": _OPT_STRS,
    "loadgen.results": _OPT_SCALARS,
    **{
        f"loadgen.results.{key}": _OPT_NUMBER
        for info in LOADGEN_SCENARIOS.values()
        for key in (info.rate_key, info.headline[1])
    },
    "loadgen.settings": _OPT_SCALARS,
    "loadgen.early_stopping_estimates_ns": (_optional(_dict_of(_dict_of(_is_number))), "objects of numbers"),
    "loadgen.warmup": _OPT_DICT,
    "loadgen.warmup.median_latency_ns": _OPT_NUMBER,
    "loadgen.sut": _OPT_DICT,
    "loadgen.sut.service_p50_ns": _OPT_NUMBER,
}


def _values_at(data: Any, path: list[str], where: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of `path` in `data`; a missing last key reads as None, a missing parent as nothing."""
    if not isinstance(data, Mapping):
        return
    head, rest = path[0], path[1:]
    here = f"{where}.{head}" if where else head
    if not rest:
        yield here, data.get(head)
    elif data.get(head) is not None:
        yield from _values_at(data[head], rest, here)


def check_fields(data: Mapping[str, Any]) -> None:
    """ValueError naming the first field of a record's JSON whose type does not conform (FIELD_TYPES), or whose
    lists disagree in length (a sample's token marks and token counts belong to that sample)."""
    for path, (conforms, expected) in FIELD_TYPES.items():
        for where, value in _values_at(data, path.split(".")):
            if not conforms(value):
                shown = json.dumps(value)[:60] if _is_scalar(value) else type(value).__name__
                raise ValueError(f"{where}: {shown} is not allowed; expected {expected}")
    measurement = data.get("measurement")
    if measurement:
        samples = len(measurement["samples_ns"])
        for key in ("token_marks_ns", "tokens_per_sample"):
            given = measurement.get(key)
            if given is not None and len(given) != samples:
                raise ValueError(f"measurement.{key}: {len(given)} entries for {samples} samples; expected one each")
