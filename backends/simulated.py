"""Simulated devices. Two projections, chosen per cell by the option `projection`:

- `serving` (the default for generate workloads): the analytical serving model (backends/projection): the model
  on `chips` chips of the profile, batched to the TPOT/TTFT bounds, with parallelism and collectives; the cell's
  seq_len is the prompt, new_tokens the output length. No host run; figures per chip, labelled simulated.
- `trace` (the default for other workloads, and "what this exact eager code costs"): a call traced on this host
  (or on the meta device), projected onto a device profile, as follows.

What a simulated cell does, in its own worker:
1. Builds the workload on the host CPU at the trace precision (fp32 for fp32 specs, bf16 otherwise), if it fits
   the host's free memory; else on the meta device (no memory: any size, DeepSeek-V3 included; MoE models trace
   in bf16, the only dtype transformers' grouped experts run on meta).
2. Host validation (host builds only): measures the call here (at most 8 s, +-3% target), traces one
   call (`backends/trace.py`), and applies the cost model (`backends/costmodel.py`) to the *host's* measured
   profile (`backends/calibrate.py`); error = predicted / measured - 1 is recorded in the record and printed.
3. Projects the same trace onto the target profile (`backends/profiles.toml`) at the spec's precision; the point
   estimate carries a band from the host validation error: [estimate / (1 + |error|), estimate x (1 + |error|)].
   A meta-device trace has no host validation: its band is the median |error| of the last `bench simulate
   --validate` on this host, or none (said so) if there is none.
Within one `bench run`, cells that share a workload, shape and trace precision (other profiles; int8 and fp16
specs, which trace at bf16) reuse the first cell's host validation and trace, kept in the run directory's
`.simulation-cache/` (`host_validation.reused_from_cell` says so); a new run measures afresh.
No sample distribution is invented: a simulated record has no `measurement`, only `simulation` (and the host's
own measured median, inside `simulation.host_validation`). Outputs for the accuracy guard come from the host run
when it ran at the spec's precision.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from backends.base import Availability, Backend, Capabilities, OptionSpec, PreparedCall, SimulationContext
from bench.core.errors import UsageError
from bench.core.stats import log_symmetric_factor

if TYPE_CHECKING:
    from bench.core.spec import BenchmarkSpec, MeasureSettings
    from models.base import Workload

__all__ = ["SimulatedBackend", "SimulationResult", "host_target", "validation_summary_path"]


@dataclass
class SimulationResult:
    simulation: dict[str, Any]
    facts: dict[str, Any]
    work: dict[str, Any]
    output: Any = None
    accuracy_note: str | None = None
    not_projected: str | None = None  # why there is no estimate (e.g. the model does not fit): an unavailable record


def _cache_root() -> Path:
    return Path(os.environ.get("CATCHUP_BENCH_CACHE") or Path.home() / ".cache" / "catchup-bench") / "simulation"


def validation_summary_path(host_key: str) -> Path:
    return _cache_root() / f"validation-{host_key}.json"


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


def serving_query(spec: "BenchmarkSpec", workload: "Workload", profile_key: str):
    """The serving projection a simulated cell asks for: seq_len is the prompt, new_tokens the output length."""
    from backends.projection.project import ServingQuery

    return ServingQuery(
        model=workload.name,
        profile=profile_key,
        chips=int(spec.option("chips", 1)),
        precision=spec.precision,
        kv_precision=spec.option("kv_precision", None),
        input_tokens=int(spec.seq_len or 1),
        output_tokens=int(spec.new_tokens or workload.default_new_tokens or 1),
        tpot_slo_ms=spec.option("tpot_slo_ms", None),
        ttft_slo_ms=spec.option("ttft_slo_ms", None),
        batch_size=spec.batch_size if spec.option("fixed_batch", False) else None,
        parallel=spec.option("parallel", None),
        mtp_acceptance=spec.option("mtp_acceptance", None),
        overlap=spec.option("overlap", None),
    )


def serving_estimate(serving: dict[str, Any], spec: "BenchmarkSpec") -> dict[str, Any]:
    """The record's `estimate` for a serving projection: per-chip rates with low/high, and one request's latency
    (TTFT + (output - 1) x TPOT) so latency columns have a figure; `per_chip` marks the rates as per chip.
    Low/high: the efficiency factors' ranges, widened log-symmetrically by the serving model's held-out error."""
    out_tokens = serving["output_tokens"]
    ttft, tpot = serving["ttft_ms"], serving["tpot_ms"]
    rate = serving["decode_tokens_per_s_per_chip"]
    if ttft is None or tpot is None or not rate:
        return {"latency_s": None, "per_chip": True, "new_tokens": out_tokens, "band": None}

    def latency(h: dict[str, Any]) -> float | None:
        if h.get("ttft_ms") is None or h.get("tpot_ms") is None:
            return None
        return (h["ttft_ms"] + (out_tokens - 1) * h["tpot_ms"]) / 1e3

    low, high = serving.get("low") or {}, serving.get("high") or {}
    from backends.projection.published import held_out_error

    error = held_out_error()
    widen = log_symmetric_factor(error) if error is not None else 1.0
    rate_low, rate_high = low.get("decode_tokens_per_s_per_chip"), high.get("decode_tokens_per_s_per_chip")
    return {
        "latency_s": latency(serving),
        "ttft_s": ttft / 1e3,
        "tpot_s": tpot / 1e3,
        "new_tokens": out_tokens,
        "per_chip": True,
        "chips": serving["chips"],
        "output_tokens_per_s": rate,
        "output_tokens_per_s_low": rate_low / widen if rate_low else None,
        "output_tokens_per_s_high": rate_high * widen if rate_high else None,
        "validation_error": error,
        "items_per_s": rate / out_tokens,
        "prefill_tokens_per_s": serving["prefill_tokens_per_s_per_chip"],
        "band": {
            "relative": error,
            "factor": widen,
            "low_s": latency(high) / widen if latency(high) else None,
            "high_s": latency(low) * widen if latency(low) else None,
            "from": "the efficiency factors' ranges (low = every factor at its pessimistic end), widened "
            "log-symmetrically by the serving model's held-out median error on published results",
        },
    }


def profile_target(profile, mode: str):
    from backends.costmodel import Target, default_efficiency

    peaks = {d: profile.peak_flops(d) for d in profile.peak_tflops}
    return Target(profile.key, peaks, profile.bandwidth_bytes_s, default_efficiency(profile.kind, mode))


#: Options of the serving projection (shared by every simulated backend).
SERVING_OPTIONS = {
    "projection": OptionSpec(
        str,
        "serving (analytical serving model; default for generate workloads) or trace "
        "(this host's eager call projected; default otherwise)",
        choices=("serving", "trace"),
    ),
    "chips": OptionSpec(int, "serving: chips in the deployment", minimum=1, default=1),
    "tpot_slo_ms": OptionSpec(float, "serving: TPOT bound in ms (decode batch searched up to it)", minimum=1e-3),
    "ttft_slo_ms": OptionSpec(float, "serving: TTFT bound in ms", minimum=1e-3),
    "parallel": OptionSpec(str, "serving: fixed split, e.g. tp=8,ep=32 (default: searched)"),
    "mtp_acceptance": OptionSpec(float, "serving: multi-token prediction with this acceptance rate", minimum=0.0),
    "overlap": OptionSpec(bool, "serving: two-micro-batch overlap on/off (default: searched)"),
    "kv_precision": OptionSpec(str, "serving: KV-cache precision", choices=("bf16", "fp16", "fp8", "int8", "fp32")),
    "fixed_batch": OptionSpec(
        bool, "serving: use --batch-size as the decode batch per replica instead of searching it", default=False
    ),
}


def projection_of(spec: "BenchmarkSpec", workload: "Workload | None") -> str:
    """Which projection a simulated cell uses: the option, else serving for generate workloads."""
    chosen = spec.option("projection", None)
    if chosen:
        return str(chosen)
    return "serving" if workload is not None and workload.generates else "trace"


class SimulatedBackend(Backend):
    name: ClassVar[str] = "simulated"
    libraries: ClassVar[tuple[str, ...]] = ("torch", "transformers")
    in_wildcard: ClassVar[bool] = False  # needs --profile; `ascend` (below) is the wildcard's simulated device
    summary: ClassVar[str] = "any device profile, projected from a call traced on this host (labelled simulated)"
    capabilities: ClassVar[Capabilities] = Capabilities(
        precisions=("fp32", "bf16", "fp16", "int8", "fp8", "int4"),
        simulated=True,
        loadgen=False,
        options={
            "profile": OptionSpec(str, "device profile (bench list shows them; --profile NAME)"),
            "mode": OptionSpec(
                str,
                "trace projection: execution mode the overheads assume",
                choices=("eager", "graph"),
                default="eager",
            ),
            **SERVING_OPTIONS,
        },
    )

    @classmethod
    def probe(cls) -> Availability:
        import importlib.util

        if importlib.util.find_spec("torch") is None:  # found, not imported: probing stays cheap
            return Availability(False, "torch is not installed (needed to trace)")
        return Availability(True)

    @classmethod
    def profile_key(cls, spec: "BenchmarkSpec") -> str | None:
        return spec.option("profile", cls.capabilities.options["profile"].default)

    @classmethod
    def validate_spec(cls, spec: "BenchmarkSpec", workload: "Workload | None" = None) -> None:
        super().validate_spec(spec, workload)
        from backends.profiles import get_profile, load_profiles

        key = cls.profile_key(spec)
        if key is None:
            raise UsageError(
                f"options.profile: missing; backend {cls.name} needs --profile NAME, one of "
                f"{', '.join(load_profiles())}"
            )
        get_profile(str(key))
        if workload is None:
            return
        if projection_of(spec, workload) == "serving":
            if not workload.generates:
                raise UsageError(
                    f"options.projection: 'serving' is not allowed for {workload.name} (not a generate "
                    "workload); expected trace"
                )
            from backends.projection.project import resolve
            from backends.projection.serving import parse_parallel

            query = serving_query(spec, workload, str(key))
            arch, device, _ = resolve(query)
            if query.parallel:
                parse_parallel(query.parallel, arch, query.chips)
            if query.chips > 1:
                device.profile.link("scaleup_gbs")
        else:
            serving_only = [k for k, _ in spec.options if k in SERVING_OPTIONS and k not in ("projection",)]
            if spec.precision in ("fp8", "int4") or serving_only:
                what = (
                    f"precision {spec.precision}" if spec.precision in ("fp8", "int4") else f"options.{serving_only[0]}"
                )
                raise UsageError(
                    f"{what}: not allowed with the trace projection (it traces this host's eager "
                    "call); expected -O projection=serving on a generate workload"
                )

    @classmethod
    def worker_environment(cls, spec: "BenchmarkSpec") -> dict[str, str]:
        from bench.core.environment import usable_cpu_count

        threads = str(usable_cpu_count())
        return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}

    def __init__(self, spec: "BenchmarkSpec") -> None:
        from backends.profiles import get_profile

        self.spec = spec
        self.profile = get_profile(str(self.profile_key(spec)))
        self.mode = str(spec.option("mode", "eager"))  # torch (trace path only) is imported when it is needed

    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:
        raise NotImplementedError("a simulated backend is run through simulate(), not timed")

    def synchronize(self) -> None:
        pass

    def device_info(self) -> dict[str, Any]:
        from backends.runtime import CpuRuntime

        return {
            "type": "simulated",
            "name": f"{self.profile.name} (simulated)",
            "profile": self.profile.key,
            "driver": None,
            "host": CpuRuntime().device_info(),
        }

    def thread_info(self) -> dict[str, Any]:
        from bench.core.environment import usable_cpu_count

        # what the trace path sets before it builds anything (the serving path runs no torch at all)
        return {"torch_intra_op": usable_cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}

    # -- simulation ------------------------------------------------------------------------------------------

    def simulate(
        self,
        workload: "Workload",
        spec: "BenchmarkSpec",
        settings: "MeasureSettings",
        context: SimulationContext | None = None,
    ) -> SimulationResult:
        if projection_of(spec, workload) == "serving":
            return self._simulate_serving(workload, spec)
        return self._simulate_trace(workload, spec, settings, context or SimulationContext())

    def _simulate_serving(self, workload: "Workload", spec: "BenchmarkSpec") -> SimulationResult:
        """The serving model's projection (no host run, no weights)."""
        from backends.projection.project import project

        projection = project(serving_query(spec, workload, self.profile.key))
        serving = projection.to_dict()
        headline = projection.headline()
        estimate = serving_estimate(serving, spec)
        simulation = {
            "profile": self.profile.to_dict(),
            "projection": "serving",
            "fits_device_memory": serving["fits"],
            "memory_note": serving["note"],
            "assumed_figures": serving["assumed_figures"],
            "unverified_figures": serving["unverified_figures"],
            "cost_model_version": f"serving-{serving['serving_model_version']}",
            "cost_model": serving["method"],
            "mode": "serving",
            "efficiency": serving["efficiency"],
            "estimate": estimate,
            "serving": serving,
            "host_validation": {
                "skipped": "the serving model is validated against published results and this "
                "host by `bench simulate --validate-serving` / `--validate-host`"
            },
            "traced_on": None,
        }
        facts = {
            "class": None,
            "parameters": projection.arch.total_params,
            "dtype": spec.precision,
            "technique": f"simulated {self.profile.key} {spec.precision} serving on {serving['chips']} chip(s)",
        }
        work = {
            "flops_per_call": None,
            "flops_per_call_analytic": None,
            "min_bytes_per_call": None,
            "flop_counter": "not counted: analytical serving model (per-step FLOPs in simulation.serving)",
        }
        missing = serving["note"] if headline["decode_tokens_per_s_per_chip"] is None else None
        return SimulationResult(simulation, facts, work, None, "serving projection: no outputs to compare", missing)

    def _simulate_trace(
        self, workload: "Workload", spec: "BenchmarkSpec", settings: "MeasureSettings", context: SimulationContext
    ) -> SimulationResult:
        import psutil
        import torch

        from backends.calibrate import host_profile
        from backends.costmodel import COST_MODEL_VERSION, estimate
        from backends.trace import trace_call
        from bench.core.environment import usable_cpu_count
        from models.facts import BYTES_PER_PARAMETER, count_parameters, memory_needed_bytes

        torch.set_num_threads(usable_cpu_count())
        trace_precision = "fp32" if spec.precision == "fp32" else "bf16"
        total = count_parameters(workload)[0]
        needed = memory_needed_bytes(total, trace_precision)
        on_host = needed <= psutil.virtual_memory().available
        if not on_host and workload.is_moe:
            trace_precision = "bf16"  # transformers' grouped experts run on the meta device in bf16 only
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[trace_precision]
        calibration = host_profile()
        validation: dict[str, Any]
        output = None
        accuracy_note = None
        if on_host:
            prepared = workload.prepare(dtype=dtype, device="cpu", spec=spec)
            cache = _run_cache_path(workload, spec, trace_precision, calibration, context.cache_dir)
            cached = _read_json(cache)
            if cached:  # another cell of this run (other profile, or int8/fp16 on the same trace) measured it
                validation, phases = cached["validation"], cached["phases"]
                validation["reused_from_cell"] = cached["cell"]
            else:
                validation, phases = self._validate_on_host(
                    prepared, workload, spec, settings, calibration, trace_precision, context
                )
                _write_json(cache, {"validation": validation, "phases": phases, "cell": spec.label})
            if trace_precision == spec.precision:
                with torch.inference_mode():
                    output = prepared.output() if prepared.output else None
            else:
                accuracy_note = (
                    f"{spec.precision} numerics are not emulated: the host ran {trace_precision}, "
                    "so there is no deviation to report"
                )
        else:
            prepared = workload.prepare(dtype=dtype, device="meta", spec=spec)
            phases = trace_call(prepared)
            validation = {
                "skipped": f"traced on the meta device: {workload.name} at {trace_precision} needs "
                f"~{needed / 2**30:.1f} GiB, more than this host has free"
            }
            accuracy_note = "traced on the meta device: no outputs to compare"
        target = profile_target(self.profile, self.mode)
        point = estimate(phases, target, spec.precision, spec.batch_size, workload.generates)
        point["band"] = self._band(point, validation, calibration)
        weight_bytes = total * BYTES_PER_PARAMETER[spec.precision]
        devices = -(-weight_bytes // int(self.profile.memory_bytes))
        simulation = {
            "profile": self.profile.to_dict(),
            "projection": "trace",
            "fits_device_memory": devices <= 1,
            "memory_note": (
                f"weights need {weight_bytes / 1e9:.1f} GB at {spec.precision}; the profile has "
                f"{self.profile.memory_gb.value:g} GB"
                + (
                    ""
                    if devices <= 1
                    else f": at least {devices} devices would be needed, and their parallelism and "
                    "communication are not modelled (the estimate is of one device's work)"
                )
            ),
            "assumed_figures": self.profile.assumed(),
            "cost_model_version": COST_MODEL_VERSION,
            "cost_model": "per operator max(FLOPs / (eta_c peak[dtype]), bytes / (eta_m bandwidth)) + overhead",
            "mode": self.mode,
            "efficiency": target.efficiency.to_dict(),
            "estimate": point,
            "host_validation": validation,
            "traced_on": "cpu" if on_host else "meta",
            "trace_precision": trace_precision,
            "trace": {"format": "per phase: [class, dtype, flops, bytes, count]", "phases": phases},
        }
        facts = dict(prepared.facts)
        facts["technique"] = (
            f"simulated {self.profile.key} {spec.precision} ({self.mode}; trace of this host's eager call)"
        )
        return SimulationResult(simulation, facts, self._work(workload, spec, point), output, accuracy_note)

    def _validate_on_host(self, prepared, workload, spec, settings, calibration, trace_precision, context):
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

    @staticmethod
    def _band(point: dict[str, Any], validation: dict[str, Any], calibration: dict[str, Any]) -> dict[str, Any]:
        if "error" in validation:
            relative, source = abs(validation["error"]), "this cell's host validation error"
        else:
            path = validation_summary_path(calibration["key"])
            try:
                summary = json.loads(path.read_text())
                if summary.get("version") != 2:  # an older summary's meaning differs: no band rather than a wrong one
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

    @staticmethod
    def _work(workload, spec, point) -> dict[str, Any]:
        from models.facts import BYTES_PER_PARAMETER, count_parameters
        from models.work import Shape, analytic_flops, min_bytes

        shape = Shape(spec.batch_size, spec.seq_len, spec.new_tokens)
        total, active, embedding = count_parameters(workload)
        return {
            "flops_per_call": point["flops_per_call"],
            "flops_per_call_analytic": analytic_flops(workload.config, shape),
            "min_bytes_per_call": min_bytes(
                workload.config, shape, total, active, embedding, BYTES_PER_PARAMETER[spec.precision]
            )
            if workload.config["model_type"] != "resnet"
            else None,
            "flop_counter": "dispatch tracer (torch.utils.flop_counter formulas), one traced call",
        }
