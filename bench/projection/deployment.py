"""What a serving projection is about: a chip (`Device`), precisions per tensor class (`Precision`), a split of
the chips (`Parallel`), speculative decoding (`Speculation`), engine settings (`Options`), and all of them with
the model's architecture, the efficiency factors (the device kind's, scaled by the engine's kernels) and what the
engine runs for the model's family as one value, a `Deployment` -- the one argument of the serving model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from bench.core.errors import UsageError
from bench.core.vocabulary import DTYPE_BYTES, PRECISIONS
from bench.projection.arch import Arch
from bench.projection.efficiency import Efficiency
from bench.projection.interconnect import Links

__all__ = [
    "BYTES",
    "PRECISIONS",
    "MODES",
    "Precision",
    "Parallel",
    "Device",
    "Speculation",
    "Options",
    "Deployment",
]

BYTES = DTYPE_BYTES
KV_PRECISIONS = ("fp32", "bf16", "fp16", "fp8", "int8")
#: Schemes of the serving model beyond one dtype: weights at one precision, GEMM inputs at another.
SCHEMES = {"int4": ("int4", "bf16"), "w4a8": ("int4", "int8")}
#: How prefill and decode share chips: on separate instances, or on the same chips (chunked prefill).
MODES = ("disaggregated", "colocated")


@dataclass(frozen=True)
class Precision:
    """Per tensor class: weights (storage), compute (the GEMM peak used), KV cache."""

    weights: str
    compute: str
    kv: str

    name: str = ""

    @classmethod
    def named(cls, name: str, kv: str | None = None) -> "Precision":
        """bf16/fp16/fp32: everything at that precision; fp8/int8/fp4: weights and GEMM inputs (W8A8, FP4), KV
        cache bf16 unless `kv` says otherwise; int4: weight-only (compute in bf16); w4a8: int4 weights, int8
        GEMM inputs."""
        if name not in BYTES and name not in SCHEMES:
            allowed = ", ".join((*PRECISIONS, *SCHEMES.keys() - set(PRECISIONS)))
            raise UsageError(f"precision: {name!r} is not allowed; expected one of {allowed}")
        if kv is not None and kv not in KV_PRECISIONS:
            raise UsageError(f"kv_precision: {kv!r} is not allowed; expected one of bf16, fp16, fp8, int8, fp32")
        weights, compute = SCHEMES.get(name, (name, name))
        default_kv = name if name in ("fp32", "fp16") else "bf16"
        return cls(weights, compute, kv or default_kv, name)

    @property
    def activation_bytes(self) -> float:
        """Bytes of activations moved between layers and chips (16-bit, or 32-bit at fp32)."""
        return 4.0 if self.compute == "fp32" else 2.0

    @property
    def dispatch_bytes(self) -> float:
        """Bytes per element of an expert-parallel dispatch (quantized to the GEMM input dtype where 8-bit)."""
        return BYTES[self.compute] if self.compute in ("fp8", "int8") else self.activation_bytes

    @property
    def weight_bytes(self) -> float:
        return BYTES[self.weights]

    @property
    def kv_bytes(self) -> float:
        return BYTES[self.kv]

    def to_dict(self) -> dict[str, str]:
        return {"weights": self.weights, "compute": self.compute, "kv_cache": self.kv}

    @property
    def scheme(self) -> str:
        """The name engines list among their precisions (w4a8, int4, fp8, ...)."""
        return self.name or self.weights


@dataclass(frozen=True)
class Parallel:
    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1

    @property
    def chips(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def replica_chips(self) -> int:
        """Chips of one attention replica (one TP group across all PP stages)."""
        return self.tp * self.pp

    def label(self) -> str:
        return f"tp={self.tp},pp={self.pp},ep={self.ep},dp={self.dp}"

    def to_dict(self) -> dict[str, int]:
        return {"tp": self.tp, "pp": self.pp, "ep": self.ep, "dp": self.dp}


@dataclass(frozen=True)
class Device:
    """A chip as the serving model sees it: peaks per compute dtype, HBM bandwidth and capacity, links."""

    key: str
    kind: str
    peak_flops: dict[str, float]
    bandwidth_bytes_s: float
    memory_bytes: float
    tdp_w: float | None = None
    price_usd: float | None = None
    profile: Any = None  # the bench.projection.profiles.Profile, where there is one (interconnect figures)

    @classmethod
    def of_profile(cls, profile) -> "Device":
        price = profile.price_usd.value
        return cls(
            profile.key,
            profile.kind,
            {d: profile.peak_flops(d) for d in profile.peak_tflops},
            profile.bandwidth_bytes_s,
            profile.memory_bytes,
            profile.tdp_w.value,
            None if math.isnan(price) else price,
            profile,
        )

    def peak(self, dtype: str) -> float:
        if dtype not in self.peak_flops:
            raise UsageError(
                f"precision: {dtype!r} is not allowed on {self.key} (no published {dtype} peak); "
                f"allowed: {', '.join(sorted(set(self.peak_flops) | {'int4'}))}"
            )
        return self.peak_flops[dtype]

    def links(self, efficiency: Efficiency) -> Links | None:
        return (
            Links.of(self.profile, efficiency.collective)
            if self.profile is not None and self.profile.interconnect
            else None
        )


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding: `tokens` drafts per step, verified by the target in one step that emits
    `acceptance_length` tokens per request on average (1 < L <= K + 1). MTP and EAGLE-3 draft with one extra
    layer of the target's width per draft token (DeepSeek's MTP module is one decoder layer, MoE included);
    a draft model drafts with its own full forward pass per token (`draft_model`)."""

    method: str
    tokens: int
    acceptance_length: float
    draft_model: str | None = None

    @classmethod
    def mtp(cls, acceptance: float) -> "Speculation":
        """DeepSeek's one-token MTP at acceptance rate a: L = 1 + a."""
        return cls("mtp", 1, 1.0 + acceptance)

    @property
    def query_tokens(self) -> int:
        return self.tokens + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "tokens": self.tokens,
            "acceptance_length": self.acceptance_length,
            "draft_model": self.draft_model,
        }


@dataclass(frozen=True)
class Options:
    """Engine settings a deployment runs with: speculative decoding, two-micro-batch overlap (None: searched
    where the engine has it and expert-parallel traffic exists), expert load balancing where the engine has it."""

    speculation: Speculation | None = None
    overlap: bool | None = None
    eplb: bool = True

    def overlap_for(self, arch: Arch, par: Parallel) -> bool:
        if self.overlap is not None:
            return self.overlap
        return arch.moe_layers > 0 and par.ep > 1

    def choices(self, arch: Arch, par: Parallel, can_overlap: bool = True) -> list["Options"]:
        """The settings a search tries for this split: overlap as given, or both where it can matter and the
        engine has it."""
        if self.overlap is not None:
            return [self]
        if not (arch.moe_layers > 0 and par.ep > 1) or not can_overlap:
            return [replace(self, overlap=False)]
        return [replace(self, overlap=False), replace(self, overlap=True)]

    @property
    def tokens_per_request_step(self) -> int:
        return self.speculation.query_tokens if self.speculation else 1

    @property
    def output_per_request_step(self) -> float:
        return self.speculation.acceptance_length if self.speculation else 1.0


@dataclass(frozen=True)
class Deployment:
    """A model served on chips: architecture, precisions, chip, efficiency factors (engine-scaled), engine
    settings, split, the engine and what it runs for this family (`caps`), and how prefill and decode share chips.
    The search varies `parallel` and `options` (`with_split`); everything else is fixed by the query."""

    arch: Arch
    precision: Precision
    device: Device
    efficiency: Efficiency
    options: Options = Options()
    parallel: Parallel = Parallel()
    engine: Any = None  # bench.projection.engines.Engine (None: no engine constraints, e.g. the host check)
    caps: Any = None  # bench.projection.engines.Capabilities for the model's family (None: unconstrained)
    mode: str = "disaggregated"
    batch_limit: int = (
        0  # requests a replica may hold at once beyond the engine's own limit (a benchmark's concurrency)
    )

    @property
    def overlap(self) -> bool:
        return self.options.overlap_for(self.arch, self.parallel)

    @property
    def eplb(self) -> bool:
        return self.options.eplb and (self.caps is None or self.caps.eplb)

    @cached_property
    def draft(self) -> "Deployment | None":
        """What drafts one speculative token (None without speculation): one layer of the target (MTP, EAGLE-3:
        attention and the layer's MLP or MoE) or a draft model, on this deployment's split and chips. Computed
        once per deployment (a search prices it at every batch it tries)."""
        spec = self.options.speculation
        if spec is None:
            return None
        if spec.method == "draft":
            from bench.projection.project import arch_of_model

            return replace(self, arch=arch_of_model(spec.draft_model), parallel=replace(self.parallel, ep=1),
                           options=replace(self.options, speculation=None, overlap=False))  # fmt: skip
        moe = 1 if (spec.method == "mtp" and self.arch.moe_layers) else 0
        layer = replace(self.arch, layers=1, moe_layers=moe)
        return replace(self, arch=layer, options=replace(self.options, speculation=None))

    @property
    def max_batch(self) -> int:
        """Requests one replica runs at once at most: the engine's limit and the deployment's, 0 for none."""
        limits = [x for x in (self.engine.max_batch if self.engine is not None else 0, self.batch_limit) if x]
        return min(limits) if limits else 0

    @property
    def chunk_tokens(self) -> int:
        return self.engine.chunk_tokens if self.engine is not None and self.engine.chunk_tokens else 8192

    def with_split(self, parallel: Parallel, options: Options | None = None) -> "Deployment":
        return replace(self, parallel=parallel, options=options or self.options)

    def with_efficiency(self, efficiency: Efficiency) -> "Deployment":
        return replace(self, efficiency=efficiency)

    def split_choices(self) -> list["Deployment"]:
        """This deployment with each engine setting the search tries for its split (overlap on/off)."""
        can = self.caps is None or self.caps.overlap
        return [replace(self, options=o) for o in self.options.choices(self.arch, self.parallel, can)]
