"""Validation of the simulation's cost model against this host, and a fit of its efficiency factors.

Every simulated record traced on the host carries `simulation.host_validation`: the host's measured median and
the cost model's prediction for the host (calibrated peaks and bandwidth, eta 1, measured per-operator overhead).
`validation_rows` tabulates them; `median_abs_error` is the figure the docs quote.

Fit. `fit_host_factors` searches a grid of three multipliers on the host model -- compute efficiency eta_c
(0.2-1.5), memory efficiency eta_m (0.2-1.5) and the per-operator overhead (0.25-8x) -- re-costing each record's
trace digest, and keeps the combination with the smallest median |log(predicted / measured)|. The fitted factors
are reported and stored beside the defaults, never replacing them: they describe this host, and a fit over a
handful of models is easily over-fitted (the table shows both errors).
"""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from bench.core.record import Record

__all__ = ["ValidationRow", "validation_rows", "median_abs_error", "fit_host_factors"]

ETA_GRID = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5)
OVERHEAD_GRID = (0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)


@dataclass(frozen=True)
class ValidationRow:
    record: Record
    measured_s: float
    predicted_s: float

    @property
    def error(self) -> float:
        return self.predicted_s / self.measured_s - 1


def validation_rows(records: Sequence[Record]) -> list[ValidationRow]:
    rows = []
    for record in records:
        validation = (record.simulation or {}).get("host_validation") or {}
        if record.status == "ok" and "error" in validation:
            rows.append(ValidationRow(record, validation["measured_p50_s"], validation["predicted_s"]))
    return rows


def median_abs_error(errors: Sequence[float]) -> float | None:
    return statistics.median(abs(e) for e in errors) if errors else None


def _predict(row: ValidationRow, eta_c: float, eta_m: float, overhead: float) -> float:
    from backends.costmodel import estimate
    from backends.trace_projection import host_target

    validation = row.record.simulation["host_validation"]
    host = validation["host"]
    target = host_target(host).with_efficiency(
        eta_compute=eta_c,
        eta_memory=eta_m,
        overhead_matmul_s=host["op_overhead_s"] * overhead,
        overhead_memory_s=host["op_overhead_s"] * overhead,
    )
    phases = row.record.simulation["trace"]["phases"] if row.record.simulation["traced_on"] == "cpu" else None
    return estimate(phases, target, validation["precision"], row.record.spec.batch_size)["latency_s"]


def fit_host_factors(rows: Sequence[ValidationRow]) -> dict[str, Any] | None:
    """Grid search of (eta_c, eta_m, overhead multiplier) minimising the median |log error| over `rows`."""
    if len(rows) < 3:
        return None
    best: tuple[float, tuple[float, float, float]] | None = None
    for eta_c, eta_m, overhead in itertools.product(ETA_GRID, ETA_GRID, OVERHEAD_GRID):
        score = statistics.median(abs(math.log(_predict(r, eta_c, eta_m, overhead) / r.measured_s)) for r in rows)
        if best is None or score < best[0]:
            best = (score, (eta_c, eta_m, overhead))
    _, (eta_c, eta_m, overhead) = best
    errors = [_predict(r, eta_c, eta_m, overhead) / r.measured_s - 1 for r in rows]
    return {
        "eta_compute": eta_c,
        "eta_memory": eta_m,
        "overhead_multiplier": overhead,
        "median_abs_error": median_abs_error(errors),
        "errors": errors,
        "records": len(rows),
    }
