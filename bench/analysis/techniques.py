"""Efficiency gain of each technique against a baseline technique on the same workload and shape.

A technique is a record's (backend, precision, options). For every group of records with the same workload,
batch size, sequence length and new tokens, the gain of a technique is median latency(baseline) / median
latency(technique) -- above 1 is faster -- with a 95% percentile-bootstrap interval (2,000 resamples of each
side's samples, seeded): `bench.analysis.compare.ratio_interval`, the same as `bench compare`; beside it the technique's deviation from the
fp32 CPU reference. The baseline is the accuracy reference itself: torch fp32 eager on the CPU, as the
backends declare it (`Backend.is_reference`). Only measured records of one run should be compared this way (they share a
machine state); simulated records are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from bench.analysis.compare import ratio_interval
from bench.core.record import Record
from bench.core.spec import BenchmarkSpec
from bench.core.stats import median
from bench.core.vocabulary import shape_of, technique_of

__all__ = ["TechniqueGain", "technique_gains", "technique_label"]


def technique_label(spec: BenchmarkSpec) -> str:
    """A technique is backend, precision and the options the backend declares as technique (not threads)."""
    from backends.registry import backend_class, is_registered

    name = backend_class(spec.backend).technique_name(spec) if is_registered(spec.backend) else None
    return f"{spec.backend} {name or technique_of(spec, spec.options)}"


@dataclass(frozen=True)
class TechniqueGain:
    spec: BenchmarkSpec
    baseline: BenchmarkSpec
    median_ms: float
    speedup: float
    speedup_ci: tuple[float, float]
    accuracy: dict[str, Any] | None


def _is_reference(spec: BenchmarkSpec) -> bool:
    from backends.registry import backend_class, is_registered

    return is_registered(spec.backend) and backend_class(spec.backend).is_reference(spec)


def technique_gains(records: Iterable[Record]) -> list[TechniqueGain]:
    """Gains of every ok record against the reference technique of its group (fp32 eager on the reference
    runtime, as the backend declares it); groups without a reference record are skipped."""
    ok = [r for r in records if r.status == "ok" and r.measurement and r.measurement.samples_ns]
    if any(r.simulated for r in ok):
        raise ValueError("simulated records have no samples to compare; compare measured records only")
    groups: dict[tuple, list[Record]] = {}
    for record in ok:
        groups.setdefault((shape_of(record.spec), record.spec.weights), []).append(record)
    gains: list[TechniqueGain] = []
    for members in groups.values():
        base = next((r for r in members if _is_reference(r.spec)), None)
        if base is None:
            continue
        base_samples = np.asarray(base.measurement.samples_ns, dtype=float)
        for record in members:
            samples = np.asarray(record.measurement.samples_ns, dtype=float)
            gains.append(
                TechniqueGain(
                    spec=record.spec,
                    baseline=base.spec,
                    median_ms=median(samples) / 1e6,
                    speedup=median(base_samples) / median(samples),
                    speedup_ci=ratio_interval(samples, base_samples, seed=0),
                    accuracy=record.accuracy,
                )
            )
    return gains
