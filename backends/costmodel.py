"""The roofline cost model that projects a traced call onto a device.

Per operator (from the trace digest, `backends/trace.py`):

    t = max(FLOPs / (eta_c x peak[dtype]), bytes / (eta_m x bandwidth)) + overhead[class]

views cost nothing; a phase is the sum of its operators, run one after another (eager execution does not
overlap kernels of one stream). A call's latency is the sum of its phases; for generation, phase 0 is the time
to first token and the mean of the others the time per output token.

Efficiency factors and per-operator overheads (defaults; `override()` replaces any):
  NPU (Ascend)  eta_c 0.65 (0.80 for int8 matmuls), eta_m 0.75; overhead per operator 5 us matmul / 10 us other in
                eager mode (light-llm-simulator's static costs), 1 us in graph mode (aclgraph/GE removes most
                launch cost; 1 us is an assumption)
  GPU (NVIDIA)  eta_c 0.70 (llm-analysis: <= 0.7 for inference), eta_m 0.85 (0.85-0.9 for H100/A100); overhead 5 us
                per operator eager (an assumption: PyTorch eager dispatch + launch), 1 us in graph mode (CUDA graphs;
                an assumption)
  host CPU      eta 1.0: the peaks are the calibrated achieved rates, and the overhead is the measured cost of one
                small operator (backends/calibrate.py)
Sources: ../shared/reference/hardware.md section (c). Precision mapping: the trace runs at fp32 (fp32 specs) or bf16;
fp16 specs are costed at the fp16 peak, int8 specs cost matmuls at the int8 peak with 1-byte operands (dynamic
int8: weights and activations of matmuls in int8), other operators as traced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

from bench.core.vocabulary import DTYPE_BYTES

#: per phase: [(class, dtype, flops, bytes, count), ...] as backends.trace produces it
Digest = list[tuple[str, str, int, int, int]]

__all__ = ["COST_MODEL_VERSION", "Efficiency", "Target", "default_efficiency", "cost_phases", "estimate"]

COST_MODEL_VERSION = 1

#: bytes per element of a traced operator's dtype (the core's table, plus fp64 that traces can hold)
_BYTES = {**DTYPE_BYTES, "fp64": 8.0}


@dataclass(frozen=True)
class Efficiency:
    eta_compute: float
    eta_memory: float
    overhead_matmul_s: float
    overhead_memory_s: float
    eta_compute_int8: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_DEFAULTS = {
    ("npu", "eager"): Efficiency(0.65, 0.75, 5e-6, 10e-6, 0.80, "hardware.md (c): light-llm-simulator static costs"),
    ("npu", "graph"): Efficiency(0.65, 0.75, 1e-6, 1e-6, 0.80, "graph-mode overhead 1 us: assumption"),
    ("gpu", "eager"): Efficiency(0.70, 0.85, 5e-6, 5e-6, None, "eager overhead 5 us per operator: assumption"),
    ("gpu", "graph"): Efficiency(0.70, 0.85, 1e-6, 1e-6, None, "graph-mode overhead 1 us: assumption"),
}


def default_efficiency(kind: str, mode: str) -> Efficiency:
    return _DEFAULTS[(kind, mode)]


@dataclass(frozen=True)
class Target:
    """What the cost model needs of a device: peak FLOP/s per dtype, bandwidth, and efficiency.

    A measured device (the host) may also give `matmul_curve`: per dtype, [(arithmetic intensity, achieved FLOP/s)]
    from calibration; a matmul then runs at the rate interpolated (log-log) at its own intensity instead of the
    roofline's max(), and `memory_bandwidth_bytes_s` (element-wise) serves the non-matmul operators."""

    name: str
    peak_flops: Mapping[str, float]
    bandwidth_bytes_s: float
    efficiency: Efficiency
    matmul_curve: Mapping[str, list] | None = None
    memory_bandwidth_bytes_s: float | None = None

    def with_efficiency(self, **changes: Any) -> "Target":
        return replace(self, efficiency=replace(self.efficiency, **changes))


def _op_dtype_and_bytes(cls: str, dtype: str, nbytes: int, precision: str) -> tuple[str, int]:
    """Map a traced operator to the dtype and bytes it has at the spec's precision on the target."""
    if precision == "int8" and cls == "matmul":
        return "int8", int(nbytes // _BYTES.get(dtype, 2))
    if precision == "fp16" and dtype == "bf16":
        return "fp16", nbytes
    if precision == "fp32" and dtype == "bf16":  # a meta-device trace of an MoE model runs in bf16
        return "fp32", nbytes * 2
    return dtype, nbytes


def _curve_rate(curve: list, intensity: float) -> float:
    """Achieved FLOP/s at `intensity`, interpolated log-log between measured points, flat beyond the ends."""
    import math

    points = sorted(curve)
    if intensity <= points[0][0]:
        return points[0][1] * intensity / points[0][0]  # below the thinnest point: bandwidth-bound, linear
    if intensity >= points[-1][0]:
        return points[-1][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= intensity <= x1:
            t = (math.log(intensity) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))
    return points[-1][1]


def _op_time(target: Target, cls: str, dtype: str, flops: int, nbytes: int) -> tuple[float, str]:
    eff = target.efficiency
    if cls == "view":
        return 0.0, "view"
    if cls == "matmul" and target.matmul_curve and dtype in target.matmul_curve and nbytes > 0:
        intensity = flops / nbytes
        rate = _curve_rate(target.matmul_curve[dtype], intensity) * eff.eta_compute
        bound = "compute" if intensity >= sorted(target.matmul_curve[dtype])[-1][0] / 4 else "memory"
        return flops / rate + eff.overhead_matmul_s, bound
    bandwidth = (
        target.memory_bandwidth_bytes_s
        if cls == "memory" and target.memory_bandwidth_bytes_s
        else target.bandwidth_bytes_s
    )
    memory = nbytes / (eff.eta_memory * bandwidth)
    if cls == "matmul":
        peak = target.peak_flops.get(dtype) or target.peak_flops.get("fp32")
        eta = eff.eta_compute_int8 if dtype == "int8" and eff.eta_compute_int8 else eff.eta_compute
        compute = flops / (eta * peak)
        bound = "compute" if compute >= memory else "memory"
        return max(compute, memory) + eff.overhead_matmul_s, bound
    return memory + eff.overhead_memory_s, "memory"


def cost_phases(phases: list[Digest], target: Target, precision: str) -> list[dict[str, Any]]:
    """Seconds per phase on `target`, with the share of time that is compute-bound, memory-bound and overhead."""
    out = []
    for digest in phases:
        total = compute_s = memory_s = overhead_s = 0.0
        flops = nbytes = kernels = 0
        for cls, dtype, op_flops, op_bytes, count in digest:
            dtype, op_bytes = _op_dtype_and_bytes(cls, dtype, op_bytes, precision)
            seconds, bound = _op_time(target, cls, dtype, op_flops, op_bytes)
            if cls == "view":
                continue
            overhead = target.efficiency.overhead_matmul_s if cls == "matmul" else target.efficiency.overhead_memory_s
            total += seconds * count
            overhead_s += overhead * count
            if bound == "compute":
                compute_s += (seconds - overhead) * count
            else:
                memory_s += (seconds - overhead) * count
            flops += op_flops * count
            nbytes += op_bytes * count
            kernels += count
        out.append(
            {
                "seconds": total,
                "flops": flops,
                "bytes": nbytes,
                "kernels": kernels,
                "compute_bound_s": compute_s,
                "memory_bound_s": memory_s,
                "overhead_s": overhead_s,
            }
        )
    return out


def estimate(
    phases: list[Digest], target: Target, precision: str, batch_size: int, generates: bool = False
) -> dict[str, Any]:
    """Latency per call (and TTFT/TPOT for generation) of a traced call on `target`."""
    costed = cost_phases(phases, target, precision)
    latency = sum(p["seconds"] for p in costed)
    result: dict[str, Any] = {
        "latency_s": latency,
        "items_per_s": batch_size / latency if latency > 0 else None,
        "flops_per_call": sum(p["flops"] for p in costed),
        "bytes_per_call": sum(p["bytes"] for p in costed),
        "kernels_per_call": sum(p["kernels"] for p in costed),
        "compute_bound_s": sum(p["compute_bound_s"] for p in costed),
        "memory_bound_s": sum(p["memory_bound_s"] for p in costed),
        "overhead_s": sum(p["overhead_s"] for p in costed),
    }
    if generates:
        decode = [p["seconds"] for p in costed[1:]]
        result.update(
            {
                "ttft_s": costed[0]["seconds"],
                "tpot_s": sum(decode) / len(decode) if decode else None,
                "output_tokens_per_s": batch_size * len(costed) / latency if latency > 0 else None,
                "new_tokens": len(costed),
            }
        )
    return result
