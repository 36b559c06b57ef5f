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
from typing import TYPE_CHECKING, Any, Callable, ClassVar, ContextManager, Mapping

from bench.errors import UsageError, invalid_value

if TYPE_CHECKING:
    from bench.spec import BenchmarkSpec
    from models.base import Workload

__all__ = ["Availability", "OptionSpec", "Capabilities", "PreparedCall", "Backend", "Stamp"]

#: A device-aware clock: synchronises the device, then returns time.perf_counter_ns().
Stamp = Callable[[], int]


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str | None = None


@dataclass(frozen=True)
class OptionSpec:
    """One backend option: its type, an optional lower bound or choice list, and a help line."""

    kind: type
    help: str
    minimum: float | None = None
    choices: tuple[Any, ...] | None = None

    def check(self, name: str, value: Any) -> None:
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise invalid_value(f"options.{name}", value, "a whole number")
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
    device_memory: bool = False  # reports device memory statistics
    device_timer: bool = False  # has device-side event timing besides the wall clock
    simulated: bool = False  # figures are projected, not measured


@dataclass
class PreparedCall:
    """A workload ready to time on a device.

    `call(stamp)` runs one iteration. Generation workloads call `stamp()` after each output token step and
    return the list of stamps; other workloads return None. `output()` runs one forward pass on the same
    inputs and returns the tensor the accuracy guard compares with the fp32 reference (hidden states for
    encoders, class logits for vision models, logits at every prompt position for LMs).
    """

    call: Callable[[Stamp], list[int] | None]
    items_per_call: int
    tokens_per_call: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    output: Callable[[], Any] | None = None


class Backend(abc.ABC):
    """Base class of every adapter. Class-level facts are light; instances may hold heavy state."""

    name: ClassVar[str]
    summary: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @classmethod
    @abc.abstractmethod
    def probe(cls) -> Availability:
        """Whether this backend can run here, and if not, why. No side effects beyond imports."""

    @classmethod
    def validate_spec(cls, spec: "BenchmarkSpec") -> None:
        """Raise a one-line UsageError if the spec asks for a precision or option this backend lacks."""
        if spec.precision not in cls.capabilities.precisions:
            raise invalid_value(f"precision (backend {cls.name})", spec.precision, cls.capabilities.precisions)
        for key, value in spec.options:
            if key not in cls.capabilities.options:
                allowed = ", ".join(cls.capabilities.options) or "none"
                raise UsageError(f"options.{key}: {key!r} is not an option of backend {cls.name}; allowed: {allowed}")
            cls.capabilities.options[key].check(key, value)

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
