"""The serving model against this host: the same functions that project devices, given the host CPU's measured
profile (backends.calibrate: matmul peak per dtype, copy bandwidth), predict the prefill time (TTFT) and decode
step time (TPOT) that `bench run` measured for catalogue LMs here.

Leave-one-model-out: for each model, the CPU efficiency factors (gemm and its half-efficiency rows, attention,
memory, per-layer and per-step overheads) are fitted on the *other* models' measurements (least squares on log
errors, scipy's bounded Nelder-Mead from the table's central values, inside the table's ranges), then the
left-out model is predicted. The host's fp32 and bf16 paths use different instructions (AVX-512 FP32 vs BF16/AMX
kernels) and so are fitted as two devices, each on the rows of its precision.
The reported error is predicted / measured - 1 on the left-out model only.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from bench.projection.deployment import Deployment, Device, Options, Precision
from bench.projection.efficiency import Efficiency, load_efficiency
from bench.projection.search import decode_point, prefill_point
from models.catalogue import HOST_VALIDATION_MODELS, get_workload

__all__ = [
    "HostRow",
    "rows_from_records",
    "host_device",
    "predict_row",
    "fit_host",
    "leave_one_model_out",
    "HOST_FITTED",
    "VALIDATION_MODELS",
    "summarize",
]

#: The factors fitted per fold (the others keep the table's values: one host has no collectives or imbalance).
HOST_FITTED = ("gemm", "gemm_half_rows", "attention", "memory", "layer_overhead_us", "step_overhead_ms")
#: The host validation set's language models (models.catalogue.HOST_VALIDATION_MODELS): dense decoders that run
#: on a 2-core, 24 GiB machine in seconds per call.
VALIDATION_MODELS = tuple(m for m in HOST_VALIDATION_MODELS if get_workload(m).generates)


@dataclass(frozen=True)
class HostRow:
    """One measured cell: a model at a precision, batch, prompt length and output length, with its medians."""

    model: str
    precision: str
    batch: int
    seq_len: int
    new_tokens: int
    ttft_s: float
    tpot_s: float


def rows_from_records(records: Iterable[Any]) -> list[HostRow]:
    """Measured, ok generation records of the CPU backend (medians of TTFT and TPOT)."""
    rows = []
    for r in records:
        if r.simulated or r.status != "ok" or r.spec.backend != "cpu" or r.spec.options:
            continue
        generation = r.generation()
        if not generation or (r.spec.new_tokens or 0) < 2:
            continue
        rows.append(
            HostRow(
                r.spec.workload,
                r.spec.precision,
                r.spec.batch_size,
                r.spec.seq_len,
                r.spec.new_tokens,
                generation.ttft.p50 / 1e9,
                generation.tpot.p50 / 1e9,
            )
        )
    return rows


def host_device(calibration: dict[str, Any], memory_bytes: float) -> Device:
    peaks = dict(calibration["peak_flops"])
    peaks.setdefault("fp16", peaks["bf16"])
    return Device("host (calibrated)", "cpu", peaks, calibration["bandwidth_bytes_s"], memory_bytes)


def predict_row(row: HostRow, device: Device, eff: Efficiency) -> tuple[float, float]:
    """(TTFT, TPOT) in seconds from the serving model on one chip (the host), no parallelism."""
    from bench.projection.arch import arch_of
    from models.catalogue import get_workload

    workload = get_workload(row.model)
    arch = arch_of(workload.name, workload.config)
    prec = Precision.named(row.precision)
    dep = Deployment(arch, prec, device, eff, Options(overlap=False))
    pre = prefill_point(dep, row.batch, row.seq_len)
    dec = decode_point(dep, row.batch, row.seq_len, row.new_tokens)
    return pre.ttft_s, dec.tpot_s


def _loss(rows: Sequence[HostRow], device: Device, eff: Efficiency) -> float:
    total = 0.0
    for row in rows:
        ttft, tpot = predict_row(row, device, eff)
        total += math.log(ttft / row.ttft_s) ** 2 + math.log(tpot / row.tpot_s) ** 2
    return total


def fit_host(rows: Sequence[HostRow], device: Device, base: Efficiency | None = None) -> Efficiency:
    """The CPU factors minimising the squared log error of TTFT and TPOT over `rows`, inside their ranges."""
    from scipy.optimize import minimize

    base = base or load_efficiency("cpu")
    bounds = [(math.log(base.factors[k].low), math.log(base.factors[k].high)) for k in HOST_FITTED]
    start = [math.log(base.factors[k].value) for k in HOST_FITTED]

    def objective(x: Sequence[float]) -> float:
        values = {k: math.exp(v) for k, v in zip(HOST_FITTED, x)}
        return _loss(rows, device, base.with_values(**values))

    result = minimize(
        objective, start, method="Nelder-Mead", bounds=bounds, options={"maxiter": 600, "xatol": 1e-3, "fatol": 1e-6}
    )
    return base.with_values(**{k: math.exp(v) for k, v in zip(HOST_FITTED, result.x)})


def leave_one_model_out(rows: Sequence[HostRow], device: Device) -> list[dict[str, Any]]:
    """Every row predicted by factors fitted on the other models' rows only."""
    out = []
    models = sorted({r.model for r in rows})
    for model in models:
        for precision in sorted({r.precision for r in rows if r.model == model}):
            train = [r for r in rows if r.model != model and r.precision == precision]
            if not train:
                continue
            eff = fit_host(train, device)
            out += _predicted(rows, model, precision, device, eff, models)
    return out


def _predicted(
    rows: Sequence[HostRow], model: str, precision: str, device: Device, eff: Efficiency, models: Sequence[str]
) -> list[dict[str, Any]]:
    out = []
    for row in (r for r in rows if r.model == model and r.precision == precision):
        ttft, tpot = predict_row(row, device, eff)
        out.append(
            {
                "model": row.model,
                "precision": row.precision,
                "batch": row.batch,
                "seq_len": row.seq_len,
                "new_tokens": row.new_tokens,
                "ttft_measured_s": row.ttft_s,
                "ttft_predicted_s": ttft,
                "ttft_error": ttft / row.ttft_s - 1,
                "tpot_measured_s": row.tpot_s,
                "tpot_predicted_s": tpot,
                "tpot_error": tpot / row.tpot_s - 1,
                "fitted_on": [m for m in models if m != model],
                "factors": {k: eff.values[k] for k in HOST_FITTED},
            }
        )
    return out


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    errors = [abs(r[k]) for r in results for k in ("ttft_error", "tpot_error")]
    return {
        "predictions": len(errors),
        "median_abs_error": statistics.median(errors) if errors else None,
        "max_abs_error": max(errors) if errors else None,
        "median_abs_error_ttft": statistics.median(abs(r["ttft_error"]) for r in results) if results else None,
        "median_abs_error_tpot": statistics.median(abs(r["tpot_error"]) for r in results) if results else None,
    }
