"""One serving projection: a model on N chips of a device at a precision, under latency bounds -- the chosen
configuration for each phase, its figures per chip, per cluster, per watt and per dollar, where a step's time
goes, and low/high figures from the efficiency factors' ranges. Simulated, and labelled so in every output.

`project()` is what `bench simulate --model ... --profile ...` prints and what `--backend simulated` records for
generative workloads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.core.errors import UsageError
from bench.projection.arch import Arch, arch_of
from bench.projection.deployment import Deployment, Device, Options, Parallel, Precision
from bench.projection.efficiency import Efficiency, load_efficiency
from bench.projection.memory import weight_bytes_per_chip
from bench.projection.search import DecodePoint, PrefillPoint, parse_parallel, search_decode, search_prefill

__all__ = ["ServingQuery", "Projection", "project", "check", "resolve", "MAX_CHIPS", "SERVING_MODEL_VERSION"]

#: The serving model's version in every projection (and in simulated records' `cost_model_version`).
SERVING_MODEL_VERSION = 1

#: Largest cluster projected (CloudMatrix384 is 384 chips; DeepSeek's decode unit 144 GPUs).
MAX_CHIPS = 4096
MAX_TOKENS = 1 << 20


@dataclass(frozen=True)
class ServingQuery:
    """What to project; validated at construction (one-line errors naming the field, value and what is allowed)."""

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

    def __post_init__(self) -> None:
        _whole("chips", self.chips, 1, MAX_CHIPS)
        _whole("input_tokens", self.input_tokens, 1, MAX_TOKENS)
        _whole("output_tokens", self.output_tokens, 1, MAX_TOKENS)
        if self.batch_size is not None:
            _whole("batch_size", self.batch_size, 1, 1 << 16)
        for name in ("tpot_slo_ms", "ttft_slo_ms"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0
            ):
                raise UsageError(f"{name}: {value!r} is not allowed; expected a positive number of milliseconds")
        if self.mtp_acceptance is not None and not (0 <= self.mtp_acceptance <= 1):
            raise UsageError(f"mtp_acceptance: {self.mtp_acceptance!r} is not allowed; expected a rate in [0, 1]")
        Precision.named(self.precision, self.kv_precision)


def _whole(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UsageError(f"{name}: {value!r} is not allowed; expected a whole number from {low} to {high:,}")


@dataclass
class Projection:
    query: ServingQuery
    arch: Arch
    device: Device
    precision: Precision
    efficiency: Efficiency
    decode: DecodePoint | None
    prefill: PrefillPoint | None
    fits: bool
    note: str
    low: dict[str, Any] = field(default_factory=dict)
    high: dict[str, Any] = field(default_factory=dict)
    assumed: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)

    # -- headline figures ---------------------------------------------------------------------------------------

    def headline(self) -> dict[str, Any]:
        d, p = self.decode, self.prefill
        return {
            "decode_tokens_per_s_per_chip": d.tokens_per_s_per_chip if d else None,
            "prefill_tokens_per_s_per_chip": p.tokens_per_s_per_chip if p else None,
            "tpot_ms": d.tpot_s * 1e3 if d else None,
            "ttft_ms": p.ttft_s * 1e3 if p else None,
        }

    def to_dict(self) -> dict[str, Any]:
        q, d, p = self.query, self.decode, self.prefill
        out: dict[str, Any] = {
            "simulated": True,
            "model": q.model,
            "architecture": self.arch.name,
            "profile": self.device.key,
            "chips": q.chips,
            "precision": self.precision.to_dict(),
            "input_tokens": q.input_tokens,
            "output_tokens": q.output_tokens,
            "tpot_slo_ms": q.tpot_slo_ms,
            "ttft_slo_ms": q.ttft_slo_ms,
            "fits": self.fits,
            "note": self.note,
            **self.headline(),
            "batch_per_chip": d.batch_per_chip if d else None,
            "parallelism": d.parallel.to_dict() if d else None,
            "breakdown": d.step.breakdown() if d else None,
            "decode": _decode_dict(d, self.device, q.chips) if d else None,
            "prefill": _prefill_dict(p, self.device, q.chips) if p else None,
            "mtp_acceptance": q.mtp_acceptance,
            "overlap": None,
            "low": self.low,
            "high": self.high,
            "per_watt": _per(self.headline(), self.device.tdp_w),
            "per_1000_usd": _per(self.headline(), self.device.price_usd / 1e3 if self.device.price_usd else None),
            "assumed_figures": self.assumed,
            "unverified_figures": self.unverified,
            "efficiency": self.efficiency.to_dict(),
            "serving_model_version": SERVING_MODEL_VERSION,
            "method": "analytical serving model (bench/projection); simulated, not measured",
        }
        if d:
            out["overlap"] = d.options.overlap_for(self.arch, d.parallel)
        return out


def _per(headline: dict[str, Any], figure: float | None) -> dict[str, Any] | None:
    if not figure or math.isnan(figure):
        return None
    return {k: (v / figure if v is not None else None) for k, v in headline.items() if "per_s" in k}


def _utilisation(step, seconds: float) -> tuple[float, float]:
    return step.flops / seconds / step.peak_flops, step.bytes / seconds / step.bandwidth


def _decode_dict(d: DecodePoint, dev: Device, chips: int) -> dict[str, Any]:
    mfu, mbu = _utilisation(d.step, d.step.time_s)
    return {
        "parallelism": d.parallel.to_dict(),
        "overlap": d.options.overlap,
        "batch_per_replica": d.batch,
        "batch_per_chip": d.batch_per_chip,
        "tpot_ms": d.tpot_s * 1e3,
        "step_ms": d.step.time_s * 1e3,
        "tokens_per_s_per_chip": d.tokens_per_s_per_chip,
        "tokens_per_s_cluster": d.tokens_per_s_per_chip * chips,
        "mfu": mfu,
        "mbu": mbu,
        "breakdown": d.step.breakdown(),
        "memory": d.memory.to_dict(),
    }


def _prefill_dict(p: PrefillPoint, dev: Device, chips: int) -> dict[str, Any]:
    mfu, mbu = _utilisation(p.step, p.step.time_s)
    return {
        "parallelism": p.parallel.to_dict(),
        "overlap": p.options.overlap,
        "prompts_per_replica": p.batch,
        "ttft_ms": p.ttft_s * 1e3,
        "tokens_per_s_per_chip": p.tokens_per_s_per_chip,
        "tokens_per_s_cluster": p.tokens_per_s_per_chip * chips,
        "mfu": mfu,
        "mbu": mbu,
        "breakdown": p.step.breakdown(),
        "memory": p.memory.to_dict(),
    }


def resolve(query: ServingQuery) -> tuple[Arch, Device, Precision]:
    from bench.projection.profiles import get_profile
    from models.catalogue import get_workload

    workload = get_workload(query.model)
    if not workload.generates:
        raise UsageError(
            f"model: {query.model!r} is not allowed; the serving model projects generate workloads "
            "(decoder LLMs); the trace projection (--backend simulated) covers the others"
        )
    arch = arch_of(workload.name, workload.config)
    device = Device.of_profile(get_profile(query.profile, field="profile"))
    precision = Precision.named(query.precision, query.kv_precision)
    device.peak(precision.compute)  # a precision the device has no peak for: one line, before any search
    return arch, device, precision


def check(query: ServingQuery) -> None:
    """Everything about `query` that can be refused without projecting it: the model (a decoder), the profile,
    the precision on that device, the split and, on more than one chip, the device's interconnect figures."""
    arch, device, _ = resolve(query)
    if query.parallel:
        parse_parallel(query.parallel, arch, query.chips)
    if query.chips > 1:
        device.profile.link("scaleup_gbs")


def project(
    query: ServingQuery, efficiency: Efficiency | None = None, bands: bool = True, device: Device | None = None
) -> Projection:
    """The serving projection of `query`. `device` replaces the profile's chip (a hybrid of two profiles, for the
    catch-up waterfall's hardware steps); `efficiency` replaces the device kind's factors."""
    arch, resolved, precision = resolve(query)
    device = device or resolved
    eff = efficiency or load_efficiency(device.kind)
    parallel = parse_parallel(query.parallel, arch, query.chips) if query.parallel else None
    if query.chips > 1 and not (device.profile and device.profile.interconnect):
        device.profile.link("scaleup_gbs")
    decode, prefill = _search(query, arch, device, precision, eff, parallel)
    fits, note = _fit_note(query, arch, device, precision, eff, decode, prefill)
    proj = Projection(query, arch, device, precision, eff, decode, prefill, fits, note)
    if device.profile is not None:
        proj.assumed = device.profile.figures_with_status("ASSUMED")
        proj.unverified = device.profile.figures_with_status("UNV")
    if bands and fits:
        for end in ("low", "high"):
            d, p = _search(query, arch, device, precision, eff.at(end), parallel)
            setattr(proj, end, Projection(query, arch, device, precision, eff, d, p, True, "").headline())
    return proj


def _search(
    query: ServingQuery, arch: Arch, device: Device, precision: Precision, eff: Efficiency, parallel: Parallel | None
) -> tuple[DecodePoint | None, PrefillPoint | None]:
    tpot = query.tpot_slo_ms / 1e3 if query.tpot_slo_ms else None
    ttft = query.ttft_slo_ms / 1e3 if query.ttft_slo_ms else None
    dep = Deployment(arch, precision, device, eff, Options(query.mtp_acceptance, query.overlap))
    decode = search_decode(dep, query.chips, query.input_tokens, query.output_tokens, tpot, query.batch_size, parallel)
    prefill_dep = Deployment(arch, precision, device, eff, Options(None, query.overlap))
    prefill = search_prefill(prefill_dep, query.chips, query.input_tokens, ttft, None, parallel)
    return decode, prefill


def _fit_note(query, arch, device, precision, eff, decode, prefill) -> tuple[bool, str]:
    if decode and prefill:
        return True, "fits"
    usable = device.memory_bytes * eff.memory_usable
    total_weights = weight_bytes_per_chip(arch, precision, Parallel())
    best_split = min(
        weight_bytes_per_chip(arch, precision, Parallel(tp=c, ep=c if arch.moe_layers else 1)) for c in (query.chips,)
    )
    gb = 1e9
    if best_split > usable:
        needed = math.ceil(total_weights / usable)
        return False, (
            f"does not fit: {arch.name} weights at {precision.weights} are {total_weights / gb:,.0f} GB; "
            f"spread over {query.chips} chip(s) that is {best_split / gb:,.1f} GB per chip, more than the "
            f"{usable / gb:,.1f} GB usable of {device.key}'s {device.memory_bytes / gb:g} GB; at least "
            f"{needed} chips are needed for the weights alone, more for the KV cache"
        )
    missing = " and ".join(name for name, point in (("decode", decode), ("prefill", prefill)) if point is None)
    bounds = ", ".join(f"{k} <= {v:g} ms" for k, v in (("TPOT", query.tpot_slo_ms), ("TTFT", query.ttft_slo_ms)) if v)
    return False, (
        f"no {missing} configuration on {query.chips} chip(s) of {device.key} fits memory"
        + (f" and meets {bounds}" if bounds else "")
        + " (a single request's KV cache and activations "
        "may not fit beside the weights, or the bound is below the fastest step)"
    )
