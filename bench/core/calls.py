"""The call types the harness, backends and models share: what a backend declares and what it hands back.

A backend declares `Capabilities` (precisions, `OptionSpec`s, what it measures); `prepare()` returns a
`PreparedCall` (the call to time, with optional `ExportSpec` and `take`); the timed loop reads time only through a
`Stamp` made by `make_stamp`. A simulated backend gets a `SimulationContext` from the worker: where this run keeps
shared host measurements, and the measurement layer's timed loop (so backends never import it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from bench.core.errors import invalid_value

__all__ = [
    "BACKEND_KINDS",
    "Availability",
    "OptionSpec",
    "Capabilities",
    "PreparedCall",
    "Stamp",
    "Telemetry",
    "ExportSpec",
    "SimulationContext",
    "StreamedRequest",
    "make_stamp",
]

#: A device-aware clock: synchronises the device, then returns time.perf_counter_ns().
Stamp = Callable[[], int]


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str | None = None


@dataclass(frozen=True)
class OptionSpec:
    """One backend option: its type, optional bounds or choice list, a help line, and its default.

    A spec that sets an option to its default is the same cell as one that leaves it out: the planner drops
    such options (`Backend.canonical`), so `compile=none` and no `compile` share one key. `maximum` is a number or
    a function of nothing returning one (a bound that depends on the host, e.g. its CPUs). Numbers must be finite.
    `credentials`: the value is a URL that may carry secrets (user information, query values): records, keys and
    everything shown hold its redacted form (bench.core.secrets); only the worker gets the real one."""

    kind: type
    help: str
    minimum: float | None = None
    choices: tuple[Any, ...] | None = None
    default: Any = None
    maximum: "float | Callable[[], float] | None" = None
    credentials: bool = False

    def upper_bound(self) -> float | None:
        return self.maximum() if callable(self.maximum) else self.maximum

    def check(self, name: str, value: Any) -> None:
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise invalid_value(f"options.{name}", value, "a whole number")
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.kind is not int and not isinstance(value, self.kind):
            raise invalid_value(f"options.{name}", value, f"a {self.kind.__name__}")
        if isinstance(value, float) and not math.isfinite(value):
            raise invalid_value(f"options.{name}", value, "a finite number")
        if self.minimum is not None and value < self.minimum:
            raise invalid_value(f"options.{name}", value, f"a value >= {self.minimum:g}")
        upper = self.upper_bound()
        if upper is not None and value > upper:
            raise invalid_value(f"options.{name}", value, f"a value <= {upper:g}")
        if self.choices is not None and value not in self.choices:
            raise invalid_value(f"options.{name}", value, self.choices)


BACKEND_KINDS = ("measured", "simulated", "remote")


@dataclass(frozen=True)
class Capabilities:
    """What an adapter can do, declared so the planner and reports need not guess from its name."""

    precisions: tuple[str, ...]
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    reference: bool = False  # at fp32 this runtime *is* the accuracy reference (torch eager on the CPU)
    reference_neutral_options: tuple[str, ...] = ()  # options that leave a reference cell the reference (threads)
    device_memory: bool = False  # reports device memory statistics
    device_timer: bool = False  # has device-side event timing besides the wall clock
    telemetry: bool = False  # samples power/energy/clocks over the timed loop
    generation: bool = True  # runs multi-token generation (else decoders run prefill only: new_tokens 1)
    loadgen: bool = True  # can serve MLPerf LoadGen scenarios (a measured runtime; not a simulation)
    #: what the backend is: "measured" (a runtime timed here), "simulated" (projected, not measured) or "remote"
    #: (a server measured from outside over the network: the worker runs its request load)
    kind: str = "measured"
    device: str = "cpu"  # what a cell occupies while it runs (a DEVICE_KINDS word): "cpu" (the host's cores), "gpu" or "npu" (one card)

    def __post_init__(self) -> None:
        if self.kind not in BACKEND_KINDS:
            raise ValueError(f"Capabilities.kind: {self.kind!r} is not allowed; expected one of {BACKEND_KINDS}")

    @property
    def simulated(self) -> bool:
        """Figures are projected, not measured."""
        return self.kind == "simulated"

    @property
    def remote(self) -> bool:
        """A server measured from outside over the network."""
        return self.kind == "remote"


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
    #: generation workloads: `stream(prompt_ids, max_new)` yields output token ids one step at a time for one
    #: request of any prompt (what `bench serve` streams); None elsewhere
    stream: "Callable[[list[int], int], Iterator[int]] | None" = None


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


def make_stamp(synchronize: Callable[[], None], clock: Callable[[], int] = time.perf_counter_ns) -> Stamp:
    """A clock that first waits for the device: the only way the timed loop reads time."""

    def stamp() -> int:
        synchronize()
        return clock()

    return stamp


@dataclass
class StreamedRequest:
    """One request to a serving engine, as the client saw it (perf_counter_ns clock).

    ok             False for a refused connection, a timeout, an HTTP error or a malformed stream (see `error`)
    start_ns       when the request was sent; `token_ns` when each content chunk arrived; `end_ns` when it ended
    output_tokens  tokens the server reported producing (`usage.completion_tokens`), None if it did not say
    prompt_tokens  prompt tokens the server reported (`usage.prompt_tokens`)
    status         the HTTP status of the response (None when none arrived)
    retried        the reasons of earlier attempts that failed before any byte of a response arrived (each retried
                   on a fresh connection; `start_ns` is the start of the last attempt)
    engine_timings the engine's own timings of the request where its stream carries them (llama.cpp: prompt_ms,
                   predicted_per_token_ms, ...)
    fingerprint    the `system_fingerprint` the stream carried
    """

    ok: bool
    start_ns: int
    token_ns: list[int]
    end_ns: int
    output_tokens: int | None = None
    prompt_tokens: int | None = None
    error: str | None = None
    status: int | None = None
    retried: list[str] = field(default_factory=list)
    engine_timings: dict[str, float] | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class SimulationContext:
    """What the worker gives a simulated backend's `simulate()`.

    cache_dir   where simulated cells of one run share host validations and traces (None: no sharing)
    time_call   the measurement layer's timed loop, `time_call(prepared, synchronize, settings)` -> Measurement,
                for simulations that check themselves against a measured call on this host
    """

    cache_dir: Path | None = None
    time_call: Callable[..., Any] | None = None
