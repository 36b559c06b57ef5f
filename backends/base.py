"""The backend protocol: what the harness needs from a runtime on a device.

A backend answers `probe()` (available, or the reason not) without side effects, turns a workload at a
precision into a `PreparedCall`, and supplies the device-specific pieces the measurement loop uses:
`synchronize()`, an `execution_context()` for the timed region, memory statistics, device and thread facts.
Measurement code calls these and never looks at the backend's name.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, ContextManager, Mapping, Sequence

from bench.errors import UsageError, invalid_value

if TYPE_CHECKING:
    from bench.spec import BenchmarkSpec
    from models.base import Workload

__all__ = ["Availability", "OptionSpec", "Capabilities", "PreparedCall", "Backend", "Stamp", "Telemetry", "ExportSpec"]

#: A device-aware clock: synchronises the device, then returns time.perf_counter_ns().
Stamp = Callable[[], int]


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str | None = None


@dataclass(frozen=True)
class OptionSpec:
    """One backend option: its type, an optional lower bound or choice list, a help line, and its default.

    A spec that sets an option to its default is the same cell as one that leaves it out: the planner drops
    such options (`Backend.canonical`), so `compile=none` and no `compile` share one key."""

    kind: type
    help: str
    minimum: float | None = None
    choices: tuple[Any, ...] | None = None
    default: Any = None

    def check(self, name: str, value: Any) -> None:
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise invalid_value(f"options.{name}", value, "a whole number")
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.kind is not int and not isinstance(value, self.kind):
            raise invalid_value(f"options.{name}", value, f"a {self.kind.__name__}")
        if self.minimum is not None and value < self.minimum:
            raise invalid_value(f"options.{name}", value, f"a value >= {self.minimum:g}")
        if self.choices is not None and value not in self.choices:
            raise invalid_value(f"options.{name}", value, self.choices)


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do, declared so the planner and reports need not guess from its name."""

    precisions: tuple[str, ...]
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    reference: bool = False  # at fp32 this runtime *is* the accuracy reference (torch eager on the CPU)
    reference_neutral_options: tuple[str, ...] = ()  # options that leave a reference cell the reference (threads)
    device_memory: bool = False  # reports device memory statistics
    device_timer: bool = False  # has device-side event timing besides the wall clock
    simulated: bool = False  # figures are projected, not measured
    telemetry: bool = False  # samples power/energy/clocks over the timed loop
    generation: bool = True  # runs multi-token generation (else decoders run prefill only: new_tokens 1)
    loadgen: bool = True  # can serve MLPerf LoadGen scenarios (a measured runtime; not a simulation)
    device: str = "cpu"  # what a cell occupies while it runs: "cpu" (the host's cores), "cuda" or "npu" (one card)


@dataclass
class PreparedCall:
    """A workload ready to time on a device (see `ExportSpec` for `export`).

    `call(stamp)` runs one iteration. Generation workloads call `stamp()` after each output token step and
    return the list of stamps; other workloads return None. `output()` runs one forward pass on the same
    inputs and returns the tensor the accuracy guard compares with the fp32 reference (hidden states for
    encoders, class logits for vision models, logits at every prompt position for LMs).

    `take(rows)`, where the runtime accepts any batch size, is the same call on a batch gathered from the given
    rows of the inputs (0 <= row < items_per_call): how a LoadGen system under test runs the samples of a query.
    None where the batch shape is fixed (an exported graph, a captured CUDA graph): those run whole batches.
    """

    call: Callable[[Stamp], list[int] | None]
    items_per_call: int
    tokens_per_call: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    output: Callable[[], Any] | None = None
    export: "ExportSpec | None" = None
    uncountable: str | None = None  # why FLOPs cannot be counted at torch's dispatcher for this call, if so
    take: "Callable[[Sequence[int]], PreparedCall] | None" = None


@dataclass
class ExportSpec:
    """What a graph-exporting runtime (ONNX) needs: a module taking the named inputs positionally and returning
    the one tensor `PreparedCall.output()` returns, and those inputs in order. Decoders export their prefill:
    all-position logits, from which the first output token is the argmax of the last position."""

    module: Any
    inputs: dict[str, Any]
    output_name: str


class Telemetry:
    """Samples device telemetry between `start()` and `stop()`; this base class samples nothing."""

    def start(self) -> None:
        pass

    def stop(self) -> dict[str, Any] | None:
        """The figures over the sampled window (None when nothing was sampled)."""
        return None


class Backend(abc.ABC):
    """Base class of every adapter. Class-level facts are light; instances may hold heavy state."""

    name: ClassVar[str]
    summary: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: whether the wildcard backend "*" includes this one (False for one that needs an option to mean anything)
    in_wildcard: ClassVar[bool] = True

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Availability:
        """Whether this backend can run here, and if not, why. No side effects beyond imports."""

    @classmethod
    def availability(cls, spec: "BenchmarkSpec") -> Availability:
        """Whether this backend can run this spec here (e.g. a requested execution provider); default: probe()."""
        return cls.probe()

    @classmethod
    def is_reference(cls, spec: "BenchmarkSpec") -> bool:
        """Whether this cell *is* the accuracy reference (fp32 eager on the reference runtime, no technique)."""
        return cls.capabilities.reference and spec.precision == "fp32" and all(
            key in cls.capabilities.reference_neutral_options for key, _ in spec.options)

    @classmethod
    def variants(cls) -> dict[str, Availability]:
        """Availability of the option values that depend on what is installed (e.g. execution providers),
        keyed "option=value", for `bench list`; {} when nothing beyond probe() can be missing."""
        return {}

    @classmethod
    def validate_spec(cls, spec: "BenchmarkSpec", workload: "Workload | None" = None) -> None:
        """Raise a one-line UsageError if the spec asks for a precision or option this backend lacks, or for
        something no machine could run (e.g. multi-token generation on a prefill-only backend)."""
        if spec.precision not in cls.capabilities.precisions:
            raise invalid_value(f"precision (backend {cls.name})", spec.precision, cls.capabilities.precisions)
        for key, value in spec.options:
            if key not in cls.capabilities.options:
                allowed = ", ".join(cls.capabilities.options) or "none"
                raise UsageError(f"options.{key}: {key!r} is not an option of backend {cls.name}; allowed: {allowed}")
            cls.capabilities.options[key].check(key, value)
        if spec.scenario != "latency" and not cls.capabilities.loadgen:
            raise UsageError(f"scenario: {spec.scenario!r} is not allowed on backend {cls.name} (LoadGen scenarios "
                             "need a measured runtime, not a simulation); expected latency")
        if workload is not None and workload.generates and not cls.capabilities.generation and (spec.new_tokens or 1) > 1:
            raise UsageError(
                f"new_tokens: {spec.new_tokens} is not allowed for {workload.name} on backend {cls.name}, which runs "
                "decoders' prefill only; expected --new-tokens 1 (time to first token)")

    @classmethod
    def canonical(cls, spec: "BenchmarkSpec") -> "BenchmarkSpec":
        """The spec with options equal to their declared default left out, so one cell has one key."""
        from dataclasses import replace

        options = cls.capabilities.options
        kept = tuple((k, v) for k, v in spec.options if k not in options or options[k].default is None
                     or v != options[k].default)
        return spec if kept == spec.options else replace(spec, options=kept)

    @classmethod
    def device_kind(cls, spec: "BenchmarkSpec") -> str:
        """What this cell occupies while it runs ("cpu", "cuda", "npu"): what a scheduler must give it alone."""
        return cls.capabilities.device

    @classmethod
    def build_precision(cls, spec: "BenchmarkSpec") -> str:
        """The precision the model is built at before any technique (what the fits-in-memory check uses)."""
        return spec.precision

    @classmethod
    def worker_environment(cls, spec: "BenchmarkSpec") -> dict[str, str]:
        """Environment variables the worker process needs before it imports anything (e.g. thread counts)."""
        return {}

    @abc.abstractmethod
    def prepare(self, workload: "Workload", spec: "BenchmarkSpec") -> PreparedCall:
        """Build the model at the spec's precision on the device, and its inputs; outside any timing."""

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Wait until all queued device work is done (a no-op where calls are synchronous)."""

    def execution_context(self) -> ContextManager[Any]:
        """Context the warm-up and timed loop run inside (e.g. torch.inference_mode())."""
        return contextlib.nullcontext()

    def event_timer(self) -> Any:
        """Device timing events for the timed loop (an object with start(), stop(), elapsed_ns()), or None."""
        return None

    def telemetry(self) -> "Telemetry":
        """Power/energy/clock sampling over the timed loop; a no-op where the device reports none."""
        return Telemetry()

    def reset_memory_stats(self) -> None:
        """Start a fresh device peak-memory window (no-op without device memory statistics)."""

    def memory_stats(self) -> dict[str, Any]:
        """Device memory figures in bytes, e.g. {"device_peak_allocated_bytes": ...}; {} if none."""
        return {}

    def available_memory_bytes(self) -> int | None:
        """Memory a model on this device can still use, for the fits-or-not check before building; None if unknown."""
        return None

    @abc.abstractmethod
    def device_info(self) -> dict[str, Any]:
        """Device name, driver and properties for the environment fingerprint."""

    def thread_info(self) -> dict[str, Any]:
        """Thread settings in force, for the environment fingerprint."""
        return {}
