"""The trace projection of a simulated cell: this host's eager call, traced, costed on a device profile.

1. Builds the workload on the host CPU at the trace precision (fp32 for fp32 specs, bf16 otherwise), if it fits
   the host's free memory; else on the meta device (no memory: any size, DeepSeek-V3 included; MoE models trace
   in bf16, the only dtype transformers' grouped experts run on meta).
2. Host validation (host builds only): measures the call here (at most 8 s, +-3% target), traces one call
   (`backends/trace.py`), and applies the cost model (`backends/costmodel.py`) to the *host's* measured profile
   (`backends/calibrate.py`); error = predicted / measured - 1 is recorded in the record.
3. Projects the same trace onto the target profile at the spec's precision; the point estimate carries a band
   from the host validation error, log-symmetric. A meta-device trace has no host validation: its band is the
   median |error| of the last `bench simulate --validate` on this host, or none (said so) if there is none.
Within one `bench run`, cells that share a workload, shape and trace precision reuse the first cell's host
validation and trace, kept in the run directory's `.simulation-cache/` (`host_validation.reused_from_cell`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.core.calls import SimulationContext
from bench.core.stats import log_symmetric_factor

if TYPE_CHECKING:
    from backends.base import SimulationResult
    from bench.core.settings import MeasureSettings
    from bench.core.spec import BenchmarkSpec
    from models.base import Workload

__all__ = [
    "simulate_trace",
    "host_target",
    "profile_target",
    "validation_summary_path",
    "write_validation_summary",
    "VALIDATION_SUMMARY_VERSION",
]


def _cache_root() -> Path:
    return Path(os.environ.get("CATCHUP_BENCH_CACHE") or Path.home() / ".cache" / "catchup-bench") / "simulation"


#: The version of the stored validation summary (`bench simulate --validate`); a summary of another version is
#: not used for bands (its meaning differs).
VALIDATION_SUMMARY_VERSION = 2


def validation_summary_path(host_key: str) -> Path:
    return _cache_root() / f"validation-{host_key}.json"


def write_validation_summary(summary: dict[str, Any]) -> Path:
    """Store a whole-set `bench simulate --validate` result for this host (atomically); returns its path."""
    path = validation_summary_path(summary["host_key"])
    _write_json(path, {"version": VALIDATION_SUMMARY_VERSION, **summary})
    return path


def _run_cache_path(
    workload, spec, trace_precision: str, calibration: dict[str, Any], cache_dir: Path | None
) -> Path | None:
    """Where this run keeps the host validation and trace of (workload, shape, trace precision), or None outside
    a run. `cache_dir` comes from the worker (inside the run directory), so every run measures its host afresh."""
    import hashlib

    from backends.costmodel import COST_MODEL_VERSION

    if cache_dir is None:
        return None
    identity = json.dumps(
        [
            workload.name,
            dict(workload.config),
            spec.weights,
            spec.batch_size,
            spec.seq_len,
            spec.new_tokens,
            trace_precision,
            calibration["key"],
            COST_MODEL_VERSION,
        ],
        default=str,
    )
    return Path(cache_dir) / (hashlib.sha256(identity.encode()).hexdigest()[:20] + ".json")


def _read_json(path: Path | None) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None


def _write_json(path: Path | None, data: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def host_target(calibration: dict[str, Any]):
    """The host as a cost-model target: calibrated peaks and bandwidth, eta 1, measured operator overhead."""
    from backends.costmodel import Efficiency, Target

    peaks = dict(calibration["peak_flops"])
    peaks.setdefault("fp16", peaks["bf16"])
    overhead = calibration["op_overhead_s"]
    curve = dict(calibration.get("matmul_curve") or {})
    if "bf16" in curve:
        curve.setdefault("fp16", curve["bf16"])
    return Target(
        "host (calibrated)",
        peaks,
        calibration["bandwidth_bytes_s"],
        Efficiency(
            1.0,
            1.0,
            overhead,
            overhead,
            None,
            "calibrated host: measured matmul rate by intensity, element-wise bandwidth, overhead",
        ),
        matmul_curve=curve or None,
        memory_bandwidth_bytes_s=calibration.get("elementwise_bandwidth_bytes_s"),
    )


def profile_target(profile, mode: str):
    from backends.costmodel import Target, default_efficiency

    peaks = {d: profile.peak_flops(d) for d in profile.peak_tflops}
    return Target(profile.key, peaks, profile.bandwidth_bytes_s, default_efficiency(profile.kind, mode))


@dataclass
class _Trace:
    """A traced call: its phases, the host validation (or why there is none), and the output to compare."""

    prepared: Any
    phases: Any
    validation: dict[str, Any]
    traced_on: str
    precision: str
    output: Any = None
    accuracy_note: str | None = None


def simulate_trace(
    profile,
    mode: str,
    workload: "Workload",
    spec: "BenchmarkSpec",
    settings: "MeasureSettings",
    context: SimulationContext,
) -> "SimulationResult":
    """The trace projection of one cell onto `profile` (module docstring)."""
    import torch

    from backends.base import SimulationResult
    from backends.calibrate import host_profile
    from backends.costmodel import estimate
    from bench.core.environment import usable_cpu_count

    torch.set_num_threads(usable_cpu_count())
    calibration = host_profile()
    trace = _trace(workload, spec, settings, calibration, context)
    target = profile_target(profile, mode)
    point = estimate(trace.phases, target, spec.precision, spec.batch_size, workload.generates)
    point["band"] = _band(point, trace.validation, calibration)
    simulation = _simulation_section(profile, mode, workload, spec, target, point, trace)
    facts = dict(trace.prepared.facts)
    facts["technique"] = f"simulated {profile.key} {spec.precision} ({mode}; trace of this host's eager call)"
    return SimulationResult(simulation, facts, _work(workload, spec, point), trace.output, trace.accuracy_note)


def _trace(workload, spec, settings, calibration, context: SimulationContext) -> _Trace:
    """Trace on the host (validated there, or reused from this run's cache) when the model fits the host's free
    memory at the trace precision, else on the meta device (no validation, no output)."""
    import psutil
    import torch

    from backends.trace import trace_call
    from models.facts import count_parameters, memory_needed_bytes

    precision = "fp32" if spec.precision == "fp32" else "bf16"
    needed = memory_needed_bytes(count_parameters(workload)[0], precision)
    if needed > psutil.virtual_memory().available:
        if workload.is_moe:
            precision = "bf16"  # transformers' grouped experts run on the meta device in bf16 only
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
        prepared = workload.prepare(dtype=dtype, device="meta", spec=spec)
        skipped = (
            f"traced on the meta device: {workload.name} at {precision} needs ~{needed / 2**30:.1f} GiB, more "
            "than this host has free"
        )
        return _Trace(prepared, trace_call(prepared), {"skipped": skipped}, "meta", precision, None,
                      "traced on the meta device: no outputs to compare")  # fmt: skip
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
    prepared = workload.prepare(dtype=dtype, device="cpu", spec=spec)
    cache = _run_cache_path(workload, spec, precision, calibration, context.cache_dir)
    cached = _read_json(cache)
    if cached:  # another cell of this run (other profile, or int8/fp16 on the same trace) measured it
        validation, phases = cached["validation"], cached["phases"]
        validation["reused_from_cell"] = cached["cell"]
    else:
        validation, phases = _validate_on_host(prepared, workload, spec, settings, calibration, precision, context)
        _write_json(cache, {"validation": validation, "phases": phases, "cell": spec.label})
    trace = _Trace(prepared, phases, validation, "cpu", precision)
    if precision == spec.precision:
        with torch.inference_mode():
            trace.output = prepared.output() if prepared.output else None
    else:
        trace.accuracy_note = (
            f"{spec.precision} numerics are not emulated: the host ran {precision}, so there is no deviation to report"
        )
    return trace


def _simulation_section(profile, mode, workload, spec, target, point, trace: _Trace) -> dict[str, Any]:
    from backends.costmodel import COST_MODEL_VERSION
    from bench.core.vocabulary import DTYPE_BYTES
    from models.facts import count_parameters

    weight_bytes = count_parameters(workload)[0] * DTYPE_BYTES[spec.precision]
    devices = math.ceil(weight_bytes / profile.memory_bytes)
    note = (
        f"weights need {weight_bytes / 1e9:.1f} GB at {spec.precision}; the profile has {profile.memory_gb.value:g} GB"
    )
    if devices > 1:
        note += (
            f": at least {devices} devices would be needed, and their parallelism and communication are not "
            "modelled (the estimate is of one device's work)"
        )
    return {
        "profile": profile.to_dict(),
        "projection": "trace",
        "fits_device_memory": devices <= 1,
        "memory_note": note,
        "assumed_figures": profile.assumed(),
        "cost_model_version": COST_MODEL_VERSION,
        "cost_model": "per operator max(FLOPs / (eta_c peak[dtype]), bytes / (eta_m bandwidth)) + overhead",
        "mode": mode,
        "efficiency": target.efficiency.to_dict(),
        "estimate": point,
        "host_validation": trace.validation,
        "traced_on": trace.traced_on,
        "trace_precision": trace.precision,
        "trace": {"format": "per phase: [class, dtype, flops, bytes, count]", "phases": trace.phases},
    }


def _validate_on_host(prepared, workload, spec, settings, calibration, trace_precision, context):
    import torch

    from backends.costmodel import estimate
    from backends.trace import trace_call
    from bench.core.stats import summarize

    if context.time_call is None:
        raise RuntimeError("a host validation needs the timed loop (SimulationContext.time_call)")

    # the validation needs a median, not the run's full precision: at most 8 s (5 s warm-up), +-3% target
    quick = dataclasses.replace(
        settings,
        max_time_s=min(settings.max_time_s, 8.0),
        warmup_max_time_s=min(settings.warmup_max_time_s, 5.0),
        ci_target=max(settings.ci_target, 0.03) if settings.ci_target else 0.0,
    )
    with torch.inference_mode():
        measurement = context.time_call(prepared, lambda: None, quick)
    phases = trace_call(prepared)
    predicted = estimate(phases, host_target(calibration), trace_precision, spec.batch_size, workload.generates)
    summary = summarize(measurement.samples_ns)
    measured_s = summary.p50 / 1e9
    return {
        "measured_p50_s": measured_s,
        "measured_p50_ci_s": [x / 1e9 for x in summary.p50_ci] if summary.p50_ci else None,
        "measured_n": summary.n,
        "predicted_s": predicted["latency_s"],
        "error": predicted["latency_s"] / measured_s - 1,
        "precision": trace_precision,
        "host": {
            k: calibration.get(k)
            for k in (
                "peak_flops",
                "matmul_curve",
                "bandwidth_bytes_s",
                "elementwise_bandwidth_bytes_s",
                "op_overhead_s",
                "key",
            )
        },
    }, phases


def _band(point: dict[str, Any], validation: dict[str, Any], calibration: dict[str, Any]) -> dict[str, Any]:
    if "error" in validation:
        relative, source = abs(validation["error"]), "this cell's host validation error"
    else:
        path = validation_summary_path(calibration["key"])
        try:
            summary = json.loads(path.read_text())
            if (
                summary.get("version") != VALIDATION_SUMMARY_VERSION
            ):  # an older summary's meaning differs: no band rather than a wrong one
                raise KeyError("version")
            relative = summary["median_abs_error"]
            source = f"median |error| of the last `bench simulate --validate` on this host ({path.name})"
        except (OSError, ValueError, KeyError):
            return {
                "relative": None,
                "from": "no band: no host validation for this cell and no `bench "
                "simulate --validate` result on this host",
            }
    latency = point["latency_s"]
    # log-symmetric: a signed error e (predicted / measured - 1) is a factor exp(|ln(1 + e)|); the stored
    # summary holds a median |error| m with no sign, so take the wider reading 1 / (1 - m)
    signed = validation.get("error")
    factor = log_symmetric_factor(signed) if signed is not None else log_symmetric_factor(-min(relative, 0.999))
    return {
        "relative": relative,
        "factor": factor,
        "low_s": latency / factor,
        "high_s": latency * factor,
        "from": source + " (log-symmetric)",
    }


def _work(workload, spec, point) -> dict[str, Any]:
    from bench.core.vocabulary import DTYPE_BYTES
    from models.facts import count_parameters
    from models.work import Shape, analytic_flops, min_bytes

    shape = Shape(spec.batch_size, spec.seq_len, spec.new_tokens)
    total, active, embedding = count_parameters(workload)
    return {
        "flops_per_call": point["flops_per_call"],
        "flops_per_call_analytic": analytic_flops(workload.config, shape),
        "min_bytes_per_call": min_bytes(workload.config, shape, total, active, embedding, DTYPE_BYTES[spec.precision])
        if workload.config["model_type"] != "resnet"
        else None,
        "flop_counter": "dispatch tracer (torch.utils.flop_counter formulas), one traced call",
    }
