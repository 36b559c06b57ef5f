"""What to project (`ServingQuery`, validated at construction) and what it resolves to (`resolve`): the model's
architecture, the chip, precisions, the engine and what it runs for the model's family, how prefill and decode
share the chips, speculative decoding, and the efficiency factors -- the device kind's silicon factors (fitted
where the fit wrote them) scaled by the engine's kernels factor. Every refusal is one line naming the field, the
value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.projection.arch import Arch, arch_of
from bench.projection.deployment import MODES, Deployment, Device, Options, Parallel, Precision, Speculation
from bench.projection.efficiency import Efficiency, load_efficiency
from bench.projection.engines import (
    ENGINE_FACTORS,
    SPEC_METHODS,
    Capabilities,
    Engine,
    default_engine,
    engine_factor,
    family_of,
    get_engine,
)

__all__ = ["ServingQuery", "Resolved", "resolve", "arch_of_model", "MAX_CHIPS", "SEARCHES"]

#: Largest cluster projected (CloudMatrix384 is 384 chips; DeepSeek's decode unit 144 GPUs).
MAX_CHIPS = 4096
MAX_TOKENS = 1 << 20
MAX_SPEC_TOKENS = 16
#: "engine": only configurations the engine runs; "any": every split and setting the model can express (a what-if).
SEARCHES = ("engine", "any")


def _whole(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name}: {value!r} is not allowed; expected a whole number from {low} to {high:,}")


def _positive(name: str, value: Any, what: str) -> None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0
    ):
        raise UsageError(f"{name}: {value!r} is not allowed; expected {what}")


@dataclass(frozen=True)
class ServingQuery:
    """What to project; validated at construction (one-line errors naming the field, value and what is allowed).
    Names (model, profile, engine) are checked when the query is resolved."""

    model: str
    profile: str
    chips: int = 1
    precision: str = "bf16"
    kv_precision: str | None = None
    input_tokens: int = 1024
    output_tokens: int = 256
    tpot_slo_ms: float | None = None
    ttft_slo_ms: float | None = None
    batch_size: int | None = None
    parallel: str | None = None
    mtp_acceptance: float | None = None
    overlap: bool | None = None
    engine: str | None = None
    mode: str | None = None
    spec_tokens: int | None = None
    acceptance_length: float | None = None
    spec_method: str | None = None
    draft_model: str | None = None
    search: str = "engine"

    def __post_init__(self) -> None:
        _whole("chips", self.chips, 1, MAX_CHIPS)
        _whole("input_tokens", self.input_tokens, 1, MAX_TOKENS)
        _whole("output_tokens", self.output_tokens, 1, MAX_TOKENS)
        if self.batch_size is not None:
            _whole("batch_size", self.batch_size, 1, 1 << 16)
        for name in ("tpot_slo_ms", "ttft_slo_ms"):
            _positive(name, getattr(self, name), "a positive number of milliseconds")
        if self.mode is not None and self.mode not in MODES:
            raise invalid_value("mode", self.mode, MODES)
        if self.search not in SEARCHES:
            raise invalid_value("search", self.search, SEARCHES)
        self._check_speculation()
        Precision.named(self.precision, self.kv_precision)

    def _check_speculation(self) -> None:
        if self.mtp_acceptance is not None:
            if (
                isinstance(self.mtp_acceptance, bool)
                or not isinstance(self.mtp_acceptance, (int, float))
                or not (0 <= self.mtp_acceptance <= 1)
            ):
                raise UsageError(f"mtp_acceptance: {self.mtp_acceptance!r} is not allowed; expected a rate in [0, 1]")
            if self.spec_tokens is not None:
                raise UsageError("mtp_acceptance: not allowed with spec_tokens; it is the one-draft shorthand for "
                                 "--spec-tokens 1 --acceptance-length 1+A")  # fmt: skip
        if self.spec_tokens is None:
            if self.acceptance_length is not None or self.spec_method is not None or self.draft_model is not None:
                raise UsageError("spec_tokens: missing; acceptance_length, spec_method and draft_model need it")
            return
        _whole("spec_tokens", self.spec_tokens, 1, MAX_SPEC_TOKENS)
        length = self.acceptance_length
        if length is None:
            raise UsageError("acceptance_length: missing; spec_tokens needs the tokens emitted per target step")
        if isinstance(length, bool) or not isinstance(length, (int, float)) or not 1 <= length <= self.spec_tokens + 1:
            raise UsageError(
                f"acceptance_length: {length!r} is not allowed with spec_tokens {self.spec_tokens}; expected a "
                f"number from 1 to {self.spec_tokens + 1} (tokens emitted per target step, drafts accepted + 1)"
            )
        if self.spec_method is not None and self.spec_method not in SPEC_METHODS:
            raise invalid_value("spec_method", self.spec_method, SPEC_METHODS)
        if (self.spec_method == "draft") != (self.draft_model is not None):
            raise UsageError("draft_model: a draft model is given with spec_method draft, and only then")

    def speculation(self, family: str) -> Speculation | None:
        """The speculative decoding asked for (MTP for MLA MoE models unless said otherwise, else EAGLE-3)."""
        if self.mtp_acceptance is not None:
            return Speculation.mtp(float(self.mtp_acceptance))
        if self.spec_tokens is None:
            return None
        method = self.spec_method or ("mtp" if family == "moe_mla" else "eagle3")
        return Speculation(method, self.spec_tokens, float(self.acceptance_length), self.draft_model)


@dataclass(frozen=True)
class Resolved:
    """A query with every name looked up and every engine rule checked: the search's starting deployment."""

    deployment: Deployment
    engine: Engine
    family: str
    mode: str
    parallel: Parallel | None


def arch_of_model(name: str) -> Arch:
    """The serving view of a catalogue decoder; a one-line UsageError for anything else."""
    from models.catalogue import get_workload

    workload = get_workload(name)
    if not workload.generates:
        raise UsageError(
            f"model: {name!r} is not allowed; the serving model projects generate workloads (decoder LLMs); the "
            "trace projection (--backend simulated) covers the others"
        )
    return arch_of(workload.name, workload.config)


def _engine(query: ServingQuery, kind: str, family: str) -> Engine:
    if query.engine is None:  # the best stack that runs the precision asked for
        return default_engine(kind, family, precision=Precision.named(query.precision, query.kv_precision).scheme)
    engine = get_engine(query.engine)
    if engine.device_kind != kind:
        from bench.projection.engines import load_engines

        others = [e.key for e in load_engines().values() if e.device_kind == kind and e.serves(family)]
        raise UsageError(
            f"engine: {query.engine!r} runs on {engine.device_kind} devices, and {query.profile} is a {kind}; "
            f"expected one of {', '.join(others)}"
        )
    engine.capabilities(family)  # one line when the engine does not serve the family
    return engine


def _mode(query: ServingQuery, engine: Engine, caps: Capabilities) -> str:
    if query.mode is None:
        return "colocated" if caps.colocated else "disaggregated"
    if query.mode == "colocated" and not caps.colocated:
        raise UsageError(f"mode: 'colocated' is not allowed with engine {engine.key}, which serves prefill and decode "
                         "on separate instances; expected disaggregated")  # fmt: skip
    if query.mode == "disaggregated" and not caps.disaggregated:
        raise UsageError(f"mode: 'disaggregated' is not allowed with engine {engine.key}; expected colocated")
    return query.mode


def _check_engine_runs(query: ServingQuery, engine: Engine, caps: Capabilities, prec: Precision, spec, arch) -> None:
    label = f"engine {engine.key}"
    if prec.scheme not in caps.precisions and prec.scheme not in ("fp32", "bf16", "fp16"):  # 16-bit runs everywhere
        raise UsageError(f"precision: {prec.scheme!r} is not run by {label} for this model; allowed: "
                         f"{', '.join(caps.precisions)} (or --search any)")  # fmt: skip
    if query.kv_precision is not None and query.kv_precision not in caps.kv:
        raise invalid_value(f"kv_precision ({label})", query.kv_precision, caps.kv)
    if spec is not None and spec.method not in caps.spec:
        allowed = ", ".join(caps.spec) or "none"
        raise UsageError(f"spec_method: {spec.method!r} is not run by {label} for this model; allowed: {allowed}")
    if spec is not None and spec.method == "mtp" and not arch.mtp_layers:
        raise UsageError(f"spec_method: 'mtp' is not allowed for {arch.name}, which has no MTP module; expected eagle3")


def _parallel(query: ServingQuery, arch: Arch, caps: Capabilities | None, domain: int | None) -> Parallel | None:
    from bench.projection.search import candidates, parse_parallel

    if not query.parallel:
        return None
    parallel = parse_parallel(query.parallel, arch, query.chips)
    if caps is not None and parallel not in set(candidates(arch, query.chips, caps, "decode", domain)):
        raise UsageError(
            f"parallel: {query.parallel!r} is not a split engine {query.engine or 'default'} runs for this model "
            "(its TP/PP/EP/attention-DP support); expected another split, or --search any"
        )
    return parallel


def resolve(
    query: ServingQuery,
    efficiency: Efficiency | None = None,
    device: Device | None = None,
    end: str = "central",
    engine_factors: Mapping[str, float] | None = None,
) -> Resolved:
    """Look up and check everything in `query` (module docstring). `device` replaces the profile's chip (hybrid
    chips of the catch-up's hardware split); `efficiency` replaces the device kind's silicon factors; `end` takes the
    silicon and engine factors at the low or high end of their ranges; `engine_factors` replaces the engine's
    factors (the fit)."""
    from bench.projection.profiles import get_profile

    arch = arch_of_model(query.model)
    device = device or Device.of_profile(get_profile(query.profile, field="profile"))
    precision = Precision.named(query.precision, query.kv_precision)
    device.peak(precision.compute)  # a precision the device has no peak for: one line, before any search
    family = family_of(arch)
    engine = _engine(query, device.kind, family)
    caps = engine.capabilities(family) if query.search == "engine" else None
    spec = query.speculation(family)
    if caps is not None:
        _check_engine_runs(query, engine, caps, precision, spec, arch)
    mode = _mode(query, engine, caps or Capabilities.unconstrained())
    if query.chips > 1:
        device.profile.link("scaleup_gbs") if device.profile is not None else None
    silicon = efficiency or load_efficiency(device.kind)
    if end != "central":
        silicon = silicon.at(end)
    factors = {k: engine_factor(engine, k, end) for k in ENGINE_FACTORS}
    factors.update(engine_factors or {})
    eff = silicon.with_engine(factors["kernels"], factors["overheads"])
    links = device.links(eff)
    parallel = _parallel(query, arch, caps, links.domain if links else None)
    options = Options(speculation=spec, overlap=query.overlap)
    dep = Deployment(arch, precision, device, eff, options, engine=engine, caps=caps, mode=mode)
    return Resolved(dep, engine, family, mode, parallel)
