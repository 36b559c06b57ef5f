"""Planning: turn a sweep into the exact list of cells, checked against the registries, before anything runs.

Everything a user can get wrong is caught here, so a bad sweep fails in a second with one line, not an hour in:
unknown model or backend, a precision or option the backend lacks, a sequence longer than the architecture
allows, a --weights directory that is missing, pickle-only or of another architecture. A backend (or execution
provider, or library) that is valid but absent on this machine is not an input error: its cells are planned as
`unavailable`, with the reason, and written as such records. Image workloads take no sequence length (seq_len
becomes None). LoadGen scenarios need the mlcommons-loadgen package: without it their cells are `unavailable`
with the install hint; single-stream cells with a batch size above 1 are left out (one sample per query). The
wildcard backend "*" means "every measured backend available here" (simulated devices are named
explicitly; `Backend.in_wildcard`): it leaves out the
unavailable ones and the cells a backend cannot express (the caller reports both).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backends.base import Availability
from backends.registry import backend_class, backend_names
from bench.core.errors import UsageError
from bench.core.scenarios import LOADGEN_SCENARIOS
from bench.core.spec import ALL_BACKENDS, BenchmarkSpec
from bench.core.sweep import Matrix, Sweep
from models.base import Workload
from models.catalogue import get_workload
from models.weights import check_weights_dir

__all__ = ["Plan", "plan_sweep"]


@dataclass
class Plan:
    """The cells to run, in order. `unavailable` maps a cell to why it cannot run here (a backend, provider or
    library that is absent): such cells are written as `unavailable` records, not run. `skipped_backends` and
    `left_out` say what the wildcard backend "*" silently passed over: backends unavailable here, and cells a
    backend cannot express (a precision it lacks, generation on a prefill-only runtime). `secrets`: see below."""

    cells: list[BenchmarkSpec]
    skipped_backends: dict[str, str] = field(default_factory=dict)  # name -> reason (wildcard only)
    unavailable: dict[BenchmarkSpec, str] = field(default_factory=dict)
    left_out: list[tuple[BenchmarkSpec, str]] = field(default_factory=list)
    #: a cell whose options hold secrets (credentials in an endpoint) -> the spec with the real values; `cells`
    #: hold the redacted form (`Backend.redacted`), the executor hands the real one to the worker only
    secrets: dict[BenchmarkSpec, BenchmarkSpec] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # the planned backends' `plan_notes` (e.g. a simulated fallback)

    @property
    def runnable(self) -> list[BenchmarkSpec]:
        return [cell for cell in self.cells if cell not in self.unavailable]


class _Probes:
    """Probe each backend at most once per plan, and each (backend, precision, options) at most once.

    `remote_devices` are device kinds a cluster offers (the Ray executor): a backend for such a device that is
    unavailable on this machine is planned as runnable; the node that runs the cell probes it again and writes
    an `unavailable` record if it cannot run there either."""

    def __init__(self, remote_devices: frozenset[str] | set[str] = frozenset()) -> None:
        self._cache: dict[str, Availability] = {}
        self._spec_cache: dict[tuple, Availability] = {}
        self.remote_devices = remote_devices

    def __call__(self, name: str) -> Availability:
        if name not in self._cache:
            cls = backend_class(name)
            found = cls.probe()
            if not found.available and cls.capabilities.device in self.remote_devices:
                found = Availability(True)
            self._cache[name] = found
        return self._cache[name]

    def loadgen(self) -> Availability:
        if "loadgen" not in self._cache:
            from bench.measure.loadgen import loadgen_unavailable_reason

            reason = loadgen_unavailable_reason()
            self._cache["loadgen"] = Availability(reason is None, reason)
        return self._cache["loadgen"]

    def ready(self, spec: BenchmarkSpec) -> None:
        """The backend's check of what the cell needs outside this machine (a remote endpoint), once per
        (backend, options); raises UsageError when it is missing."""
        key = ("ready", spec.backend, spec.options)
        if key not in self._spec_cache:
            backend_class(spec.backend).check_ready(spec)
            self._spec_cache[key] = Availability(True)

    def of_spec(self, spec: BenchmarkSpec) -> Availability:
        key = (spec.backend, spec.precision, spec.options)
        if key not in self._spec_cache:
            cls = backend_class(spec.backend)
            found = cls.availability(spec)
            if not found.available and cls.device_kind(spec) in self.remote_devices:
                found = Availability(True)
            self._spec_cache[key] = found
        return self._spec_cache[key]


def _backends_for(matrix: Matrix, probe: _Probes, skipped: dict[str, str]) -> dict[str, bool]:
    """Backend name -> whether it was named explicitly (True) or came from the wildcard (False)."""
    chosen: dict[str, bool] = {}
    for name in matrix.backends:
        if name == ALL_BACKENDS:
            for candidate in backend_names():
                if not backend_class(candidate).in_wildcard:
                    continue
                availability = probe(candidate)
                if availability.available:
                    chosen.setdefault(candidate, False)
                else:
                    skipped[candidate] = availability.reason or "unavailable"
            continue
        backend_class(name)  # unknown name -> UsageError listing the registered ones
        chosen[name] = True
    return chosen


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


def _does_not_fit_host(workload: Workload, spec: BenchmarkSpec, cls) -> str | None:
    """Why a CPU cell cannot fit this machine's memory (weights + estimated activations), or None."""
    import psutil

    from bench.core.vocabulary import DTYPE_BYTES
    from models.facts import activation_bytes, memory_needed_bytes

    precision = cls.build_precision(spec)
    # the model card's count (no model is built at plan time); tiny variants have none and are small anyway
    weights = memory_needed_bytes(int(workload.published_parameters or 0), precision)
    activations = activation_bytes(workload, spec.batch_size, spec.seq_len, spec.new_tokens, DTYPE_BYTES[precision])
    total = psutil.virtual_memory().total
    if weights + activations <= total:
        return None
    gib = 1 << 30
    return (
        f"does not fit: {workload.name} at {spec.precision}, batch {spec.batch_size} needs ~"
        f"{(weights + activations) / gib:,.1f} GiB (weights ~{weights / gib:,.1f} + activations ~"
        f"{activations / gib:,.1f}, an estimate), this machine has {total / gib:.1f} GiB"
    )


def _cells_of(matrix: Matrix, probe: _Probes, plan: Plan) -> list[BenchmarkSpec]:
    workloads = [get_workload(name) for name in matrix.models]
    backends = _backends_for(matrix, probe, plan.skipped_backends)
    for name in backends:
        plan.notes += [note for note in backend_class(name).plan_notes() if note not in plan.notes]
    cells: list[BenchmarkSpec] = []
    for workload, backend in ((w, b) for w in workloads for b in backends):
        if matrix.weights:
            check_weights_dir(workload, matrix.weights)
        expanded = Matrix(
            models=(workload.name,),
            backends=(backend,),
            precisions=matrix.precisions or backend_class(backend).capabilities.precisions[:1],
            batch_sizes=matrix.batch_sizes,
            seq_lens=matrix.seq_lens if workload.takes_tokens else (None,),
            new_tokens=_new_tokens_for(workload, matrix),
            options=matrix.options,
            weights=matrix.weights,
            scenarios=matrix.scenarios,
            loads=matrix.loads,
        )
        for spec in expanded.cells():
            cls = backend_class(spec.backend)
            spec = cls.canonical(spec)
            try:
                cls.validate_spec(spec, workload)
            except UsageError as exc:
                if backends[spec.backend]:
                    raise
                plan.left_out.append((cls.redacted(spec), str(exc)))
                continue
            _check_length(workload, spec)
            info = LOADGEN_SCENARIOS.get(spec.scenario)
            if info and info.one_sample_per_query and spec.batch_size != 1:
                plan.left_out.append(
                    (
                        cls.redacted(spec),
                        f"batch_size: {spec.batch_size} is not allowed for scenario {spec.scenario} "
                        "(one sample per query); expected 1",
                    )
                )
                continue
            if probe(spec.backend).available:
                probe.ready(spec)
            availability = probe.of_spec(spec) if probe(spec.backend).available else probe(spec.backend)
            if availability.available and not cls.capabilities.simulated and cls.capabilities.device == "cpu":
                too_big = _does_not_fit_host(workload, spec, cls)
                if too_big:
                    availability = Availability(False, too_big)
            if availability.available and spec.scenario != "latency":
                availability = probe.loadgen()
            stored = cls.redacted(spec)  # what records, keys and progress lines hold; the real one goes to the worker
            if stored != spec:
                plan.secrets[stored] = spec
            if not availability.available:
                plan.unavailable[stored] = availability.reason or "unavailable"
            cells.append(stored)
    return cells


def plan_sweep(
    sweep: Sweep, remote_devices: frozenset[str] | set[str] = frozenset(), max_cells: int | None = None
) -> Plan:
    """Every cell of every matrix, in order, without duplicates; raises UsageError on any bad input.
    `remote_devices`: device kinds the executor's cluster offers beyond this machine (see `_Probes`).
    `max_cells`: refuse, before expanding anything, a sweep whose value lists multiply to more cells."""
    total = sum(matrix.size() for matrix in sweep.matrices)
    if max_cells is not None and total > max_cells:
        raise UsageError(
            f"sweep: {total:,} cells is more than {max_cells:,}; narrow the value lists, or pass --yes to run them all"
        )
    probe, plan = _Probes(remote_devices), Plan(cells=[])
    cells: list[BenchmarkSpec] = []
    for matrix in sweep.matrices:
        cells += _cells_of(matrix, probe, plan)
    plan.cells = list(dict.fromkeys(cells))
    return plan
