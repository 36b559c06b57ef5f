"""The backend protocols: what the harness needs from a backend, by kind.

Every backend (`Backend`) declares its name, capabilities (precisions, options, what a cell occupies, its kind),
the libraries of its fingerprint, and answers `probe()` (available, or the reason not) without side effects;
it checks a spec before anything runs and describes its device for the fingerprint. Then, by declared kind
(`Capabilities.kind`; the worker dispatches on it, never on a name):
- `MeasuredBackend` ("measured"): turns a workload at a precision into a `PreparedCall` and supplies the pieces
  the timed loop uses -- `synchronize()`, an `execution_context()`, device timers, telemetry, memory statistics.
- `SimulationBackend` ("simulated"): `simulate()` returns a `SimulationResult`; nothing is timed.
- `RemoteBackend` ("remote"): a server measured from outside -- a `client()`, `prompts()`, the served model's
  name; it is also a `MeasuredBackend` whose prepared call is a network system under test for LoadGen.
"""

from __future__ import annotations

import abc
import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, ContextManager

from bench.core.calls import (
    Availability,
    Capabilities,
    ExportSpec,
    OptionSpec,
    PreparedCall,
    SimulationContext,
    Stamp,
    Telemetry,
    make_stamp,
)
from bench.core.errors import UsageError, invalid_value
from bench.core.secrets import redact_url, url_secrets
from bench.core.vocabulary import SHAPE_OPTIONS, technique_of

if TYPE_CHECKING:
    from bench.core.spec import BenchmarkSpec
    from models.base import Workload

__all__ = [
    "MeasuredBackend",
    "SimulationBackend",
    "SimulationResult",
    "RemoteBackend",
    "Availability",
    "OptionSpec",
    "Capabilities",
    "PreparedCall",
    "Backend",
    "Stamp",
    "Telemetry",
    "ExportSpec",
    "SimulationContext",
    "make_stamp",
]


class Backend(abc.ABC):
    """What every backend declares and answers, whatever its kind. Class-level facts are light; instances may
    hold heavy state."""

    name: ClassVar[str]
    summary: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    #: whether the wildcard backend "*" includes this one (False for one that needs an option to mean anything)
    in_wildcard: ClassVar[bool] = True
    #: installed distributions whose versions belong in a record's environment fingerprint
    libraries: ClassVar[tuple[str, ...]] = ()

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
        return (
            cls.capabilities.reference
            and spec.precision == "fp32"
            and all(key in cls.capabilities.reference_neutral_options for key, _ in spec.options)
        )

    @classmethod
    def technique_options(cls, spec: "BenchmarkSpec") -> tuple[tuple[str, Any], ...]:
        """The spec's options that are part of its technique (a technique is backend, precision and these);
        settings (e.g. threads, a profile: `reference_neutral_options`) and shape options (bench.core.vocabulary)
        are not."""
        skipped = (*cls.capabilities.reference_neutral_options, *SHAPE_OPTIONS)
        return tuple((k, v) for k, v in spec.options if k not in skipped)

    @classmethod
    def technique_name(cls, spec: "BenchmarkSpec") -> str:
        """The technique as comparisons key it (without the backend): precision, then its technique options.
        (`technique(spec)` on a measured adapter is the longer human description kept in the record.)"""
        return technique_of(spec, cls.technique_options(spec))

    @classmethod
    def check_ready(cls, spec: "BenchmarkSpec") -> None:
        """Before anything runs: raise a one-line UsageError if something this cell needs outside this machine
        is not there (a remote engine's endpoint); default: nothing to check."""

    @classmethod
    def plan_notes(cls) -> tuple[str, ...]:
        """What a user should read before this backend's cells run (e.g. that it falls back to a simulation,
        and why); printed once per sweep. Default: nothing."""
        return ()

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
            raise UsageError(
                f"scenario: {spec.scenario!r} is not allowed on backend {cls.name} (LoadGen scenarios "
                "need a measured runtime, not a simulation); expected latency"
            )
        if (
            workload is not None
            and workload.generates
            and not cls.capabilities.generation
            and (spec.new_tokens or 1) > 1
        ):
            raise UsageError(
                f"new_tokens: {spec.new_tokens} is not allowed for {workload.name} on backend {cls.name}, which runs "
                "decoders' prefill only; expected --new-tokens 1 (time to first token)"
            )

    @classmethod
    def canonical(cls, spec: "BenchmarkSpec") -> "BenchmarkSpec":
        """The spec with options equal to their declared default left out, so one cell has one key."""
        from dataclasses import replace

        options = cls.capabilities.options
        kept = tuple(
            (k, v) for k, v in spec.options if k not in options or options[k].default is None or v != options[k].default
        )
        return spec if kept == spec.options else replace(spec, options=kept)

    @classmethod
    def redacted(cls, spec: "BenchmarkSpec") -> "BenchmarkSpec":
        """The spec as it is stored and shown (its key, records, progress lines): options declared `credentials`
        hold their redacted form (bench.core.secrets.redact_url). The spec itself when nothing is secret."""
        from dataclasses import replace

        options = cls.capabilities.options
        kept = tuple(
            (k, redact_url(v) if k in options and options[k].credentials and isinstance(v, str) else v)
            for k, v in spec.options
        )
        return spec if kept == spec.options else replace(spec, options=kept)

    @classmethod
    def secret_values(cls, spec: "BenchmarkSpec") -> tuple[str, ...]:
        """Strings of the (real) spec that no stored text may hold: the secret parts of its `credentials`
        options and the values of the environment variables `secret_environment` names (an API key)."""
        options = cls.capabilities.options
        in_options = tuple(
            secret
            for k, v in spec.options
            if k in options and options[k].credentials and isinstance(v, str)
            for secret in url_secrets(v)
        )
        in_environment = tuple(os.environ[n] for n in cls.secret_environment(spec) if os.environ.get(n))
        return in_options + in_environment

    @classmethod
    def device_kind(cls, spec: "BenchmarkSpec") -> str:
        """What this cell occupies while it runs ("cpu", "gpu", "npu": bench.core.vocabulary.DEVICE_KINDS): what a scheduler must give it alone."""
        return cls.capabilities.device

    @classmethod
    def build_precision(cls, spec: "BenchmarkSpec") -> str:
        """The precision the model is built at before any technique (what the fits-in-memory check uses)."""
        return spec.precision

    @classmethod
    def least_seconds(cls, spec: "BenchmarkSpec") -> float:
        """The least time a remote cell's load takes, known before it runs (e.g. requests at a fixed arrival
        rate), for the run's time estimate; 0 when only the engine decides. Measured cells are bounded by the
        measurement settings instead."""
        return 0.0

    @classmethod
    def secret_environment(cls, spec: "BenchmarkSpec") -> tuple[str, ...]:
        """Names of environment variables of the submitting process that hold this cell's secrets (an API key):
        an executor whose workers run elsewhere (Ray) hands their values to the cell's task, never to a record.
        Default: none."""
        return ()

    @classmethod
    def worker_environment(cls, spec: "BenchmarkSpec") -> dict[str, str]:
        """Environment variables the worker process needs before it imports anything (e.g. thread counts)."""
        return {}

    @abc.abstractmethod
    def device_info(self) -> dict[str, Any]:
        """Device name, driver and properties for the environment fingerprint."""

    def thread_info(self) -> dict[str, Any]:
        """Thread settings in force, for the environment fingerprint."""
        return {}


class MeasuredBackend(Backend):
    """A runtime on a device, timed by the harness's loop (`Capabilities.kind` "measured")."""

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

    @staticmethod
    def technique(spec: "BenchmarkSpec") -> str:
        """A short human description of the technique, kept in the record (`model.technique`)."""
        return technique_of(spec, spec.options)


@dataclass
class SimulationResult:
    """What `SimulationBackend.simulate` returns: the record's `simulation` section, model facts and work, an
    output for the accuracy guard where the host ran at the spec's precision (else why not), and -- when nothing
    could be projected (the model does not fit) -- why: the record is then `unavailable`."""

    simulation: dict[str, Any]
    facts: dict[str, Any]
    work: dict[str, Any]
    output: Any = None
    accuracy_note: str | None = None
    not_projected: str | None = None


class SimulationBackend(Backend):
    """A device projected, not measured (`Capabilities.kind` "simulated"): every figure labelled simulated."""

    @abc.abstractmethod
    def simulate(
        self, workload: "Workload", spec: "BenchmarkSpec", settings: Any, context: SimulationContext
    ) -> SimulationResult:
        """The cell's projection (no timed loop; the context holds the run's shared cache and the timed loop for
        simulations that check themselves against this host)."""


class RemoteBackend(MeasuredBackend):
    """A server measured from outside over the network (`Capabilities.kind` "remote"): the worker runs the request
    load through `client()` with `prompts()`; LoadGen scenarios use `prepare()` as a network system under test."""

    served_model: str

    @abc.abstractmethod
    def client(self) -> Any:
        """A fresh client of the server (an async context manager with `request(prompt, max_tokens, on_token)`)."""

    @abc.abstractmethod
    def prompts(self, count: int) -> list[Any]:
        """`count` seeded prompts of the spec's length."""
