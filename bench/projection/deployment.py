"""What a serving projection is about: a chip (`Device`), precisions per tensor class (`Precision`), a split of
the chips (`Parallel`), engine options (`Options`), and all of them with the model's architecture and the device
kind's efficiency factors as one value, a `Deployment` -- the one argument the serving model's functions take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from bench.core.errors import UsageError
from bench.core.vocabulary import DTYPE_BYTES, PRECISIONS
from bench.projection.arch import Arch
from bench.projection.efficiency import Efficiency
from bench.projection.interconnect import Links

__all__ = ["BYTES", "PRECISIONS", "Precision", "Parallel", "Device", "Options", "Deployment"]

BYTES = DTYPE_BYTES
KV_PRECISIONS = ("fp32", "bf16", "fp16", "fp8", "int8")


@dataclass(frozen=True)
class Precision:
    """Per tensor class: weights (storage), compute (the GEMM peak used), KV cache."""

    weights: str
    compute: str
    kv: str

    @classmethod
    def named(cls, name: str, kv: str | None = None) -> "Precision":
        """bf16/fp16/fp32: everything at that precision; fp8/int8: weights and GEMM inputs (W8A8), KV cache
        bf16 unless `kv` says otherwise; int4: weight-only (compute in bf16)."""
        if name not in BYTES:
            raise UsageError(f"precision: {name!r} is not allowed; expected one of {', '.join(PRECISIONS)}")
        if kv is not None and kv not in KV_PRECISIONS:
            raise UsageError(f"kv_precision: {kv!r} is not allowed; expected one of bf16, fp16, fp8, int8, fp32")
        compute = "bf16" if name == "int4" else name
        default_kv = name if name in ("fp32", "fp16") else "bf16"
        return cls(name, compute, kv or default_kv)

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
class Options:
    mtp_acceptance: float | None = None  # multi-token prediction: one draft token accepted with this probability
    overlap: bool | None = None  # two-micro-batch overlap; None: searched (tried on and off where EP traffic exists)

    def overlap_for(self, arch: Arch, par: Parallel) -> bool:
        if self.overlap is not None:
            return self.overlap
        return arch.moe_layers > 0 and par.ep > 1

    def choices(self, arch: Arch, par: Parallel) -> list["Options"]:
        """The settings a search tries for this split: overlap as given, or both where it can matter."""
        if self.overlap is not None or not (arch.moe_layers > 0 and par.ep > 1):
            return [replace(self, overlap=self.overlap_for(arch, par))]
        return [replace(self, overlap=False), replace(self, overlap=True)]

    @property
    def tokens_per_request_step(self) -> int:
        return 2 if self.mtp_acceptance is not None else 1

    @property
    def output_per_request_step(self) -> float:
        return 1.0 + (self.mtp_acceptance or 0.0)


@dataclass(frozen=True)
class Deployment:
    """A model served on chips: architecture, precisions, split, chip, efficiency factors and engine options.
    The search varies `parallel` and `options` (`with_split`); everything else is fixed by the query."""

    arch: Arch
    precision: Precision
    device: Device
    efficiency: Efficiency
    options: Options = Options()
    parallel: Parallel = Parallel()

    @property
    def overlap(self) -> bool:
        return self.options.overlap_for(self.arch, self.parallel)

    def with_split(self, parallel: Parallel, options: Options | None = None) -> "Deployment":
        return replace(self, parallel=parallel, options=options or self.options)

    def with_efficiency(self, efficiency: Efficiency) -> "Deployment":
        return replace(self, efficiency=efficiency)

    def split_choices(self) -> list["Deployment"]:
        """This deployment with each engine setting the search tries for its split (overlap on/off)."""
        return [replace(self, options=o) for o in self.options.choices(self.arch, self.parallel)]
