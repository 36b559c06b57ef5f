"""Serving engines as a dimension of the serving model (engines.toml): what each engine runs per model family,
its scheduling defaults, and its kernel efficiency relative to the reference stack of its kind of device.

- `Engine.capabilities(family)` says which configurations the search may visit: parallel layouts (TP, PP in
  each phase, EP, attention data-parallelism, EP beyond one scale-up domain), micro-batch overlap, expert load
  balancing, disaggregated or colocated serving, speculative methods, KV and weight precisions.
- `Engine.kernels` multiplies the device kind's GEMM, attention and memory efficiencies (1 for the reference
  stack, on whose rows the silicon factors are fitted); its range enters the projection's low/high ends.
- The default engine of a device kind and model family is the best published stack: the engine serving that
  family with the highest central kernels factor (`default_engine`).
Every file problem is a one-line UsageError naming the engine and field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bench.core.errors import UsageError, invalid_value
from bench.core.tomlfile import read_toml
from bench.core.vocabulary import DEVICE_KINDS
from bench.projection.efficiency import Factor, parse_factor
from bench.projection.profiles import STATUSES

__all__ = [
    "Engine",
    "Capabilities",
    "FAMILIES",
    "SPEC_METHODS",
    "ENGINES_FILE",
    "ENGINE_FACTORS",
    "engine_factor",
    "load_engines",
    "get_engine",
    "default_engine",
    "family_of",
]

ENGINES_FILE = Path(__file__).with_name("engines.toml")
FAMILIES = ("dense", "moe_mla", "moe_gqa")
SPEC_METHODS = ("mtp", "eagle3", "draft")
#: An engine's efficiency relative to its device kind's reference stack: kernels (x GEMM, attention and memory
#: efficiency; higher is faster) and overheads (x the fixed costs per layer and per step; higher is slower).
ENGINE_FACTORS = ("kernels", "overheads")
_FLAGS = (
    "tp",
    "pp_prefill",
    "pp_decode",
    "ep",
    "attention_dp",
    "wide_ep",
    "overlap",
    "eplb",
    "disaggregated",
    "colocated",
)
_LISTS = ("spec", "kv", "precisions")


def family_of(arch) -> str:
    """dense, moe_mla (MoE with multi-head latent attention) or moe_gqa (other MoE)."""
    if not arch.moe_layers:
        return "dense"
    return "moe_mla" if arch.attention == "mla" else "moe_gqa"


@dataclass(frozen=True)
class Capabilities:
    """What an engine runs for one model family (engines.toml's keys)."""

    tp: bool
    pp_prefill: bool
    pp_decode: bool
    ep: bool
    attention_dp: bool
    wide_ep: bool
    overlap: bool
    eplb: bool
    disaggregated: bool
    colocated: bool
    spec: tuple[str, ...]
    kv: tuple[str, ...]
    precisions: tuple[str, ...]

    @classmethod
    def unconstrained(cls) -> "Capabilities":
        """Everything allowed (`--search any`: what the model says, whatever an engine runs)."""
        return cls(*(True,) * len(_FLAGS), SPEC_METHODS, ("fp32", "bf16", "fp16", "fp8", "int8"), ())

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*_FLAGS, *_LISTS)}


@dataclass(frozen=True)
class Engine:
    key: str
    name: str
    device_kind: str
    version: str
    reference: bool
    max_batch: int
    chunk_tokens: int
    factors: Mapping[str, Factor]  # ENGINE_FACTORS
    families: Mapping[str, Capabilities]
    memory_rule: str = "total"  # "total": memory_usable of the device; "free": of the memory left after weights
    sources: tuple[str, ...] = ()
    notes: Mapping[str, Any] = field(default_factory=dict)  # max_batch / chunk_tokens status and source

    @property
    def kernels(self) -> Factor:
        return self.factors["kernels"]

    @property
    def overheads(self) -> Factor:
        return self.factors["overheads"]

    def serves(self, family: str) -> bool:
        return family in self.families

    def capabilities(self, family: str) -> Capabilities:
        if family not in self.families:
            served = ", ".join(self.families) or "none"
            raise UsageError(f"engine: {self.key!r} does not serve {family} models; it serves {served}")
        return self.families[family]

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "device_kind": self.device_kind,
            "version": self.version,
            "reference": self.reference,
            "max_batch": self.max_batch,
            "chunk_tokens": self.chunk_tokens,
            "factors": {k: f.to_dict() for k, f in self.factors.items()},
            "families": {k: c.to_dict() for k, c in self.families.items()},
            "sources": list(self.sources),
        }


def _flag(where: str, data: Mapping[str, Any], key: str) -> bool:
    value = data.get(key)
    if not isinstance(value, bool):
        raise invalid_value(f"{where}.{key}", value, "true or false")
    return value


def _names(where: str, data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_value(f"{where}.{key}", value, "a list of names")
    return tuple(value)


def _capabilities(where: str, data: Any) -> Capabilities:
    if not isinstance(data, Mapping):
        raise invalid_value(where, data, "a table of capabilities")
    unknown = sorted(set(data) - set(_FLAGS) - set(_LISTS))
    if unknown:
        raise invalid_value(f"{where}.{unknown[0]}", unknown[0], (*_FLAGS, *_LISTS))
    spec = _names(where, data, "spec")
    bad = [s for s in spec if s not in SPEC_METHODS]
    if bad:
        raise invalid_value(f"{where}.spec", bad[0], SPEC_METHODS)
    flags = {k: _flag(where, data, k) for k in _FLAGS}
    return Capabilities(**flags, spec=spec, kv=_names(where, data, "kv"), precisions=_names(where, data, "precisions"))


def _default(where: str, data: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(data, Mapping) or "value" not in data:
        raise invalid_value(where, data, "{ value = N, status = ..., source = ... }")
    value = data["value"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1 << 20:
        raise invalid_value(f"{where}.value", value, "a whole number from 0 (no limit) to 1,048,576")
    if data.get("status") not in STATUSES or not str(data.get("source") or "").strip():
        raise invalid_value(f"{where}.status", data.get("status"), STATUSES)
    return value, {"status": data["status"], "source": data["source"]}


MEMORY_RULES = ("total", "free")


def _memory_rule(where: str, value: Any) -> str:
    if value not in MEMORY_RULES:
        raise invalid_value(f"{where}.memory_rule", value, MEMORY_RULES)
    return value


def _engine(key: str, data: Any, where: str) -> Engine:
    if not isinstance(data, Mapping):
        raise invalid_value(where, data, "a table")
    for required in ("name", "device_kind", "version", "max_batch", "chunk_tokens", "factors"):
        if required not in data:
            raise UsageError(f"{where}.{required}: missing; an engine needs name, device_kind, version, max_batch, "
                             "chunk_tokens, factors.kernels")  # fmt: skip
    if data["device_kind"] not in DEVICE_KINDS:
        raise invalid_value(f"{where}.device_kind", data["device_kind"], DEVICE_KINDS)
    max_batch, batch_note = _default(f"{where}.max_batch", data["max_batch"])
    chunk, chunk_note = _default(f"{where}.chunk_tokens", data["chunk_tokens"])
    factors = data["factors"] if isinstance(data["factors"], Mapping) else {}
    families = {f: _capabilities(f"{where}.{f}", data[f]) for f in FAMILIES if f in data}
    return Engine(
        key=key,
        name=str(data["name"]),
        device_kind=data["device_kind"],
        version=str(data["version"]),
        reference=bool(data.get("reference", False)),
        max_batch=max_batch,
        chunk_tokens=chunk,
        factors={k: parse_factor(factors.get(k), f"{where}.factors.{k}") for k in ENGINE_FACTORS},
        families=families,
        memory_rule=_memory_rule(where, data.get("memory_rule", "total")),
        sources=tuple(data.get("sources") or ()),
        notes={"max_batch": batch_note, "chunk_tokens": chunk_note},
    )


_CACHE: dict[str, dict[str, Engine]] = {}


def load_engines(path: Path = ENGINES_FILE) -> dict[str, Engine]:
    """Every engine of the file, validated; exactly one reference engine per device kind that has engines."""
    key = str(path)
    if key not in _CACHE:
        raw = read_toml(path, "engines file")
        engines = {k: _engine(k, v, f"{Path(path).name}: [{k}]") for k, v in raw.items()}
        for kind in {e.device_kind for e in engines.values()}:
            refs = [e.key for e in engines.values() if e.device_kind == kind and e.reference]
            if len(refs) != 1:
                raise UsageError(
                    f"{Path(path).name}: device kind {kind} needs exactly one reference engine; has {refs}"
                )
        _CACHE[key] = engines
    return _CACHE[key]


def get_engine(name: str, field: str = "engine") -> Engine:
    engines = load_engines()
    if name not in engines:
        raise invalid_value(field, name, tuple(engines))
    return engines[name]


def engine_factor(engine: Engine, name: str, end: str = "central") -> float:
    """One of an engine's factors at an end of its range (pessimistic "low", optimistic "high"), or central: the
    fitted figure where the fit wrote one, else the sourced value."""
    factor = engine.factors[name]
    if end in ("low", "high"):
        slower = end == "low"
        return factor.low if (name == "kernels") == slower else factor.high
    return factor.central


def reference_engine(kind: str) -> Engine:
    """The stack the silicon factors of `kind` are fitted on."""
    for engine in load_engines().values():
        if engine.device_kind == kind and engine.reference:
            return engine
    raise UsageError(f"engine: no engine is described for {kind} devices; the serving model projects gpu and npu")


def default_engine(
    kind: str, family: str, fitted: Mapping[str, float] | None = None, precision: str | None = None
) -> Engine:
    """The best published stack for a device kind and model family (and, where given, a precision scheme it
    runs): among the engines that run on that kind and serve the family, the one with the highest kernels factor
    (fitted where given, else central). 16-bit runs on every engine."""
    candidates = [e for e in load_engines().values() if e.device_kind == kind and e.serves(family)]
    if precision not in (None, "bf16", "fp16", "fp32"):
        candidates = [e for e in candidates if precision in e.capabilities(family).precisions] or candidates
    if not candidates:
        raise UsageError(f"engine: no engine serves {family} models on {kind} devices")

    def kernels(e: Engine) -> float:
        return (fitted or {}).get(e.key, engine_factor(e, "kernels"))

    return max(candidates, key=lambda e: (kernels(e), e.reference))
