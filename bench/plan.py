"""Planning: turn a sweep into the exact list of cells, checked against the registries, before anything runs.

Everything a user can get wrong is caught here, so a bad sweep fails in a second with one line, not an hour in:
unknown model or backend, a precision or option the backend lacks, a sequence longer than the architecture
allows, a --weights directory that is missing, pickle-only or of another architecture, an explicitly requested
backend that is not available on this machine. Image workloads take no sequence length (seq_len becomes None). The wildcard backend "*" means
"every registered backend available here" and silently leaves out the rest (the caller reports which).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backends.base import Availability
from backends.registry import backend_class, backend_names
from bench.errors import UsageError
from bench.spec import ALL_BACKENDS, BenchmarkSpec, Matrix, Sweep
from models.base import Workload
from models.catalogue import get_workload
from models.weights import check_weights_dir

__all__ = ["Plan", "plan_sweep"]


@dataclass
class Plan:
    cells: list[BenchmarkSpec]
    skipped_backends: dict[str, str] = field(default_factory=dict)  # name -> reason (wildcard only)


class _Probes:
    """Probe each backend at most once per plan."""

    def __init__(self) -> None:
        self._cache: dict[str, Availability] = {}

    def __call__(self, name: str) -> Availability:
        if name not in self._cache:
            self._cache[name] = backend_class(name).probe()
        return self._cache[name]


def _backends_for(matrix: Matrix, probe: _Probes, skipped: dict[str, str]) -> list[str]:
    chosen: list[str] = []
    for name in matrix.backends:
        if name == ALL_BACKENDS:
            for candidate in backend_names():
                availability = probe(candidate)
                if availability.available:
                    chosen.append(candidate)
                else:
                    skipped[candidate] = availability.reason or "unavailable"
            continue
        backend_class(name)  # unknown name -> UsageError listing the registered ones
        availability = probe(name)
        if not availability.available:
            usable = [b for b in backend_names() if probe(b).available]
            raise UsageError(
                f"backend: {name!r} is not available here ({availability.reason}); available: {', '.join(usable) or 'none'}"
            )
        chosen.append(name)
    return list(dict.fromkeys(chosen))


def _new_tokens_for(workload: Workload, matrix: Matrix) -> tuple[int | None, ...]:
    if not workload.generates:
        return (None,)
    given = tuple(n for n in matrix.new_tokens if n is not None)
    return given or (workload.default_new_tokens,)


def _check_length(workload: Workload, spec: BenchmarkSpec) -> None:
    if spec.seq_len is None:
        return
    total = spec.seq_len + (spec.new_tokens or 0)
    if total > workload.max_positions:
        what = "seq_len + new_tokens" if spec.new_tokens else "seq_len"
        raise UsageError(
            f"seq_len: {spec.seq_len} is not allowed for {workload.name}; expected {what} <= {workload.max_positions}"
            f" (got {total})"
        )


def _cells_of(matrix: Matrix, probe: _Probes, skipped: dict[str, str]) -> list[BenchmarkSpec]:
    workloads = [get_workload(name) for name in matrix.models]
    backends = _backends_for(matrix, probe, skipped)
    cells: list[BenchmarkSpec] = []
    for workload in workloads:
        if matrix.weights:
            check_weights_dir(workload, matrix.weights)
        expanded = Matrix(
            models=(workload.name,), backends=tuple(backends), precisions=matrix.precisions,
            batch_sizes=matrix.batch_sizes, seq_lens=matrix.seq_lens if workload.takes_tokens else (None,),
            new_tokens=_new_tokens_for(workload, matrix), options=matrix.options, weights=matrix.weights,
        )
        for spec in expanded.cells():
            backend_class(spec.backend).validate_spec(spec)
            _check_length(workload, spec)
            cells.append(spec)
    return cells


def plan_sweep(sweep: Sweep) -> Plan:
    """Every cell of every matrix, in order, without duplicates; raises UsageError on any bad input."""
    probe, skipped = _Probes(), {}
    cells: list[BenchmarkSpec] = []
    for matrix in sweep.matrices:
        cells += _cells_of(matrix, probe, skipped)
    return Plan(cells=list(dict.fromkeys(cells)), skipped_backends=skipped)
