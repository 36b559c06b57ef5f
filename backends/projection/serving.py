"""The serving model: what a cluster of N chips serving a decoder LLM sustains, per chip, under latency bounds.

Method, per PP stage of one chip, for one step of the engine:
- Work per layer (backends.projection.arch): projections (2 FLOPs per parameter per token; weights read once per
  step), the attention core (decode: every request reads its own KV cache, MLA on the latent with absorbed
  weights; prefill: causal, about half of S^2), the MLP or MoE layer (router, shared experts, routed experts:
  top-k per token; the weights read are those of the distinct experts a step touches, E (1 - (1 - k/E)^T) for T
  tokens in the expert-parallel group under uniform routing), norms and element-wise traffic, the LM head.
- Each class of work costs max(FLOPs / (eta_c peak[dtype]), bytes / (eta_m bandwidth)), with the efficiency
  factors of the device kind (backends.projection.efficiency); the attribution (compute- or memory-bound) is kept
  for the breakdown.
- Parallelism: TP splits attention heads, dense MLPs, shared experts and the LM head over `tp` chips (two ring
  all-reduces per layer); attention is data-parallel across the `dp` replicas (each holds its own requests' KV
  cache, as serving systems run MLA models); routed experts are spread over `ep` chips (dispatch and combine as
  two all-to-alls per MoE layer, expert load scaled by the imbalance factor) or, with ep = 1, tensor-sliced with
  TP; PP splits the layers into `pp` stages with `pp` micro-batches in flight.
- Micro-batch overlap (default on where there is expert-parallel traffic; an explicit, reported choice): two
  micro-batches alternate so the all-to-alls hide behind the other's compute; each micro-batch reads the weights
  again and pays the launch overheads again.
- Fixed costs: a per-layer overhead (graph-mode launches, small kernels) and a per-step overhead (scheduler,
  sampling).
- Multi-token prediction (optional, acceptance a): each step verifies 2 tokens per request and yields 1 + a.
- Memory per chip: weights (embedding and LM head kept 16-bit when the rest is quantized) + KV cache of the
  requests at their longest context + activations; must fit the usable fraction of the device memory. A
  configuration that does not fit is reported as not fitting, with the numbers, never projected.
- Phases are projected separately, as disaggregated deployments run them: decode at the mean context of the
  generation (input + output / 2, exact for costs linear in the context) with memory sized for the longest;
  prefill of whole prompts (TTFT = one batch's time through every stage; queueing is not modelled).
- Search: over TP/PP/EP splits of the chips and the batch, the highest decode output tokens/s per chip with
  TPOT <= the bound (and memory), and the highest prefill input tokens/s per chip with TTFT <= the bound; without
  a bound, the largest batch that fits (decode) or the smallest prefill batch within 2% of the best rate.
The same functions run with the host CPU's measured profile in `bench simulate --validate-host`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterator

from backends.projection.arch import Arch
from backends.projection.efficiency import Efficiency
from backends.projection.interconnect import Links, all_reduce_s, expert_all_to_all_s, p2p_s
from bench.core.errors import UsageError

__all__ = [
    "BYTES",
    "PRECISIONS",
    "Precision",
    "Parallel",
    "Device",
    "Options",
    "StepCost",
    "Memory",
    "DecodePoint",
    "PrefillPoint",
    "decode_point",
    "prefill_point",
    "aggregated_tokens_per_s_per_chip",
    "search_decode",
    "search_prefill",
    "candidates",
    "parse_parallel",
    "SERVING_MODEL_VERSION",
]

SERVING_MODEL_VERSION = 1
BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
PRECISIONS = tuple(BYTES)
#: Largest prefill batch tried, in tokens per chip per forward (engines chunk prefill well below this).
MAX_PREFILL_TOKENS_PER_CHIP = 65536
#: Largest decode batch tried per replica (requests).
MAX_DECODE_BATCH = 1 << 14


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
        if kv is not None and kv not in ("fp32", "bf16", "fp16", "fp8", "int8"):
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
    profile: Any = None  # the backends.profiles.Profile, where there is one (interconnect figures)

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


@dataclass
class StepCost:
    """One step of one PP stage on one chip."""

    time_s: float = 0.0
    compute_s: float = 0.0
    memory_s: float = 0.0
    communication_s: float = 0.0  # exposed (not hidden by overlap)
    communication_total_s: float = 0.0
    overhead_s: float = 0.0
    flops: float = 0.0
    bytes: float = 0.0
    peak_flops: float = 0.0
    bandwidth: float = 0.0

    def add_op(self, flops: float, bytes_: float, peak: float, eta_c: float, bandwidth: float, eta_m: float) -> None:
        t_c = flops / (eta_c * peak) if flops else 0.0
        t_m = bytes_ / (eta_m * bandwidth) if bytes_ else 0.0
        if t_c >= t_m:
            self.compute_s += t_c
        else:
            self.memory_s += t_m
        self.flops += flops
        self.bytes += bytes_

    def breakdown(self) -> dict[str, float]:
        return {
            "compute_ms": self.compute_s * 1e3,
            "memory_ms": self.memory_s * 1e3,
            "communication_ms": self.communication_s * 1e3,
            "overhead_ms": self.overhead_s * 1e3,
            "communication_hidden_ms": (self.communication_total_s - self.communication_s) * 1e3,
        }


@dataclass(frozen=True)
class Memory:
    weights: float
    kv_cache: float
    activations: float
    usable: float

    @property
    def total(self) -> float:
        return self.weights + self.kv_cache + self.activations

    @property
    def fits(self) -> bool:
        return self.total <= self.usable

    def to_dict(self) -> dict[str, float]:
        gb = 1e9
        return {
            "weights_gb": self.weights / gb,
            "kv_cache_gb": self.kv_cache / gb,
            "activations_gb": self.activations / gb,
            "total_gb": self.total / gb,
            "usable_gb": self.usable / gb,
        }


# -- memory ------------------------------------------------------------------------------------------------------


def _kv_split(arch: Arch, tp: int) -> int:
    """How many TP ranks share one request's KV cache (GQA/MHA heads split up to the KV head count; an MLA
    latent is not split: every TP rank of the replica holds it)."""
    return 1 if arch.attention == "mla" else min(tp, arch.kv_heads)


def weight_bytes_per_chip(arch: Arch, prec: Precision, par: Parallel) -> float:
    w = BYTES[prec.weights]
    edge = max(w, 2.0) if prec.weights != "fp32" else 4.0  # embedding and LM head stay 16-bit when quantized
    attention = arch.layers * arch.attention_params * w / par.tp
    dense = arch.dense_layers * arch.dense_mlp_params * w / par.tp
    shared = arch.moe_layers * (arch.router_params + arch.shared_experts * arch.expert_params) * w / par.tp
    routed = arch.routed_params * w / (par.ep if par.ep > 1 else par.tp)
    edges = (arch.embedding_params + (0 if arch.tied_embeddings else arch.head_params)) * edge / par.tp
    return (attention + dense + shared + routed) / par.pp + edges


def kv_bytes_per_request_chip(arch: Arch, prec: Precision, par: Parallel, context: float) -> float:
    """KV cache one request occupies on one chip of its replica, over all the replica's layers on that chip
    (a stage holds pp micro-batches x its layers/pp: the same as every layer for one micro-batch)."""
    return context * arch.kv_elements_per_token_layer * BYTES[prec.kv] * arch.layers / _kv_split(arch, par.tp)


def activation_bytes(arch: Arch, prec: Precision, par: Parallel, tokens: float, logits_tokens: float) -> float:
    width = max(arch.intermediate, (arch.experts_per_token + arch.shared_experts) * arch.expert_intermediate)
    return tokens * (4 * arch.hidden + 2 * width) * prec.activation_bytes + logits_tokens * arch.vocab * 4 / par.tp


def memory(
    arch: Arch,
    prec: Precision,
    par: Parallel,
    dev: Device,
    eff: Efficiency,
    requests: float,
    context: float,
    tokens: float,
    logits_tokens: float,
) -> Memory:
    return Memory(
        weight_bytes_per_chip(arch, prec, par),
        requests * kv_bytes_per_request_chip(arch, prec, par, context),
        activation_bytes(arch, prec, par, tokens, logits_tokens),
        dev.memory_bytes * eff.memory_usable,
    )


# -- one step of one stage -------------------------------------------------------------------------------------


def _distinct_expert_share(arch: Arch, tokens: float) -> float:
    """Expected share of experts that at least one of `tokens` tokens is routed to (uniform routing)."""
    if arch.experts == 0:
        return 0.0
    return 1.0 - (1.0 - arch.experts_per_token / arch.experts) ** max(tokens, 0.0)


def stage_step(
    arch: Arch,
    prec: Precision,
    par: Parallel,
    dev: Device,
    eff: Efficiency,
    opts: Options,
    requests: float,
    context: float,
    decode: bool,
    query_tokens: float,
) -> StepCost:
    """Cost of one step of one PP stage on one chip for a micro-batch of `requests` requests of `query_tokens`
    tokens each (decode: 1 or 2 with MTP; prefill: the prompt length) attending to `context` keys (decode: the
    cache length; prefill: the prompt, causal)."""
    cost = StepCost(peak_flops=dev.peak(prec.compute), bandwidth=dev.bandwidth_bytes_s)
    overlap = opts.overlap_for(arch, par)
    micro = 2 if overlap else 1
    share = 1.0 / par.pp  # this stage's share of the layers
    tokens = requests * query_tokens
    w, a = BYTES[prec.weights], prec.activation_bytes
    gemm_peak, attn_peak = dev.peak(prec.compute), dev.peak("fp32" if prec.compute == "fp32" else "bf16")
    bw = dev.bandwidth_bytes_s

    def gemm(params_per_chip: float, token_count: float, layers: float) -> None:
        cost.add_op(
            2 * params_per_chip * token_count * layers,
            micro * params_per_chip * w * layers,
            gemm_peak,
            eff.gemm_at(token_count / micro),
            bw,
            eff.memory,
        )

    # attention projections and core
    gemm(arch.attention_params / par.tp, tokens, arch.layers * share)
    if decode:
        core_flops = arch.attention_core_flops(tokens, context, decode=True) / par.tp
        kv_read = requests * context * arch.kv_elements_per_token_layer * BYTES[prec.kv] / _kv_split(arch, par.tp)
        kv_write = tokens * arch.kv_elements_per_token_layer * BYTES[prec.kv] / _kv_split(arch, par.tp)
        core_bytes = kv_read + kv_write
    else:
        core_flops = arch.attention_core_flops(tokens, (context + 1) / 2, decode=False) / par.tp
        core_bytes = tokens * (
            arch.kv_elements_per_token_layer * BYTES[prec.kv] / _kv_split(arch, par.tp)
            + 3 * arch.heads * arch.head_dim * a / par.tp
        )
    cost.add_op(
        core_flops * arch.layers * share, core_bytes * arch.layers * share, attn_peak, eff.attention, bw, eff.memory
    )
    # MLPs, shared experts, router
    gemm(arch.dense_mlp_params / par.tp, tokens, arch.dense_layers * share)
    if arch.moe_layers:
        gemm((arch.router_params + arch.shared_experts * arch.expert_params) / par.tp, tokens, arch.moe_layers * share)
        _routed_experts(cost, arch, prec, par, eff, tokens, micro, share, gemm_peak, bw)
    # element-wise traffic (norms, residuals, activation functions, rope)
    width = (
        arch.intermediate
        if not arch.moe_layers
        else (arch.experts_per_token + arch.shared_experts) * arch.expert_intermediate
    )
    cost.add_op(
        0.0,
        tokens * (8 * arch.hidden + 3 * width) * a / par.tp * arch.layers * share,
        gemm_peak,
        eff.gemm,
        bw,
        eff.memory,
    )
    # LM head (every stage carries its share: the last stage runs it)
    logits = tokens if decode else requests
    head = arch.head_params / par.tp
    cost.add_op(
        2 * head * logits * share,
        micro * head * max(w, 2.0) * share,
        gemm_peak,
        eff.gemm_at(logits / micro),
        bw,
        eff.memory,
    )
    _communication(cost, arch, prec, par, dev, eff, tokens, share, overlap, decode)
    cost.overhead_s = eff.layer_overhead_us * 1e-6 * arch.layers * share * micro + eff.step_overhead_ms * 1e-3
    work = cost.compute_s + cost.memory_s
    cost.time_s = work + cost.communication_s + cost.overhead_s
    return cost


def _routed_experts(
    cost: StepCost,
    arch: Arch,
    prec: Precision,
    par: Parallel,
    eff: Efficiency,
    tokens: float,
    micro: int,
    share: float,
    peak: float,
    bandwidth: float,
) -> None:
    w = BYTES[prec.weights]
    layers = arch.moe_layers * share
    flops = 2 * tokens * arch.experts_per_token * arch.expert_params / par.tp * eff.moe_imbalance
    group_tokens = tokens * par.ep / par.tp if par.ep > 1 else tokens
    if par.ep > 1:  # whole experts spread over ep chips; tokens of ep/tp replicas meet there
        local_experts = arch.experts / par.ep
        touched = local_experts * _distinct_expert_share(arch, group_tokens / micro)
        weight_bytes = touched * arch.expert_params * w * micro
    else:  # experts tensor-sliced with TP
        touched = arch.experts * _distinct_expert_share(arch, tokens / micro)
        weight_bytes = touched * arch.expert_params * w * micro / par.tp
    rows_per_expert = group_tokens / micro * arch.experts_per_token / arch.experts
    cost.add_op(flops * layers, weight_bytes * layers, peak, eff.gemm_at(rows_per_expert), bandwidth, eff.memory)


def _communication(
    cost: StepCost,
    arch: Arch,
    prec: Precision,
    par: Parallel,
    dev: Device,
    eff: Efficiency,
    tokens: float,
    share: float,
    overlap: bool,
    decode: bool,
) -> None:
    if par.chips == 1 and par.ep == 1:
        return
    links = dev.links(eff)
    if links is None:
        if dev.profile is not None:
            dev.profile.link("scaleup_gbs")  # raises the profile's own one-line error
        raise UsageError(
            f"chips: {par.chips} is not allowed on {dev.key}, which has no interconnect figures; expected 1"
        )
    a = prec.activation_bytes
    message = tokens * arch.hidden * a
    # TP: an all-reduce after attention and after each MLP that is tensor-parallel
    tp_reduces = arch.layers + arch.dense_layers + (arch.moe_layers if par.ep == 1 else 0)
    reduce_s = all_reduce_s(links, par.tp, message) * tp_reduces * share
    a2a_s = 0.0
    if par.ep > 1 and arch.moe_layers:
        per_chip = tokens / par.tp * eff.moe_imbalance
        limit = arch.routing_group_limit if arch.routing_groups else 0

        def a2a(token_bytes: float) -> float:
            return expert_all_to_all_s(
                links,
                par.ep,
                per_chip,
                arch.experts_per_token,
                token_bytes,
                dedup_by_domain=not decode,
                domain_limit=limit,
            )

        a2a_s = (a2a(arch.hidden * prec.dispatch_bytes) + a2a(arch.hidden * a)) * arch.moe_layers * share
    pp_s = p2p_s(links, par.replica_chips > links.domain, message) if par.pp > 1 else 0.0
    cost.communication_total_s = reduce_s + a2a_s + pp_s
    exposed_a2a = max(0.0, a2a_s - (cost.compute_s + cost.memory_s)) if overlap else a2a_s
    cost.communication_s = reduce_s + exposed_a2a + pp_s


# -- phases --------------------------------------------------------------------------------------------------


@dataclass
class DecodePoint:
    parallel: Parallel
    batch: int  # requests per replica micro-batch
    options: Options
    step: StepCost
    memory: Memory
    tpot_s: float
    tokens_per_s_per_chip: float

    @property
    def fits(self) -> bool:
        return self.memory.fits

    @property
    def batch_per_chip(self) -> float:
        """Requests in flight per chip: pp micro-batches of `batch` over the replica's tp x pp chips."""
        return self.batch / self.parallel.tp


@dataclass
class PrefillPoint:
    parallel: Parallel
    batch: int  # prompts per replica forward
    options: Options
    step: StepCost
    memory: Memory
    ttft_s: float
    tokens_per_s_per_chip: float

    @property
    def fits(self) -> bool:
        return self.memory.fits


def decode_point(
    arch: Arch,
    prec: Precision,
    par: Parallel,
    dev: Device,
    eff: Efficiency,
    opts: Options,
    batch: int,
    input_tokens: int,
    output_tokens: int,
) -> DecodePoint:
    q = opts.tokens_per_request_step
    mean_context = input_tokens + output_tokens / 2
    step = stage_step(arch, prec, par, dev, eff, opts, batch, mean_context, decode=True, query_tokens=q)
    mem = memory(arch, prec, par, dev, eff, batch, input_tokens + output_tokens, batch * q, batch * q)
    produced = opts.output_per_request_step
    tpot = par.pp * step.time_s / produced
    rate = batch * produced / (step.time_s * par.tp * par.pp)
    return DecodePoint(par, batch, opts, step, mem, tpot, rate)


def prefill_point(
    arch: Arch,
    prec: Precision,
    par: Parallel,
    dev: Device,
    eff: Efficiency,
    opts: Options,
    batch: int,
    input_tokens: int,
) -> PrefillPoint:
    step = stage_step(arch, prec, par, dev, eff, opts, batch, input_tokens, decode=False, query_tokens=input_tokens)
    mem = memory(arch, prec, par, dev, eff, batch, input_tokens, batch * input_tokens, batch)
    ttft = par.pp * step.time_s
    rate = batch * input_tokens / (step.time_s * par.tp * par.pp)
    return PrefillPoint(par, batch, opts, step, mem, ttft, rate)


def aggregated_tokens_per_s_per_chip(
    arch: Arch,
    prec: Precision,
    par: Parallel,
    dev: Device,
    eff: Efficiency,
    opts: Options,
    batch: int,
    input_tokens: int,
    output_tokens: int,
) -> float:
    """Output tokens/s per chip when the same chips prefill a batch of prompts and then decode it to the end
    (static batching, as offline benchmarks and max-throughput runs do): batch x output / (prefill + decode)."""
    pre = prefill_point(arch, prec, par, dev, eff, opts, batch, input_tokens)
    dec = decode_point(arch, prec, par, dev, eff, opts, batch, input_tokens, output_tokens)
    steps = max(output_tokens - 1, 0) / opts.output_per_request_step
    # pp micro-batches in flight: a replica finishes pp batches per pp x (prefill + decode steps) stage times
    total_s = pre.step.time_s + steps * dec.step.time_s
    return batch * output_tokens / total_s / (par.tp * par.pp)


# -- search ----------------------------------------------------------------------------------------------------


def _powers_of_two(limit: int) -> list[int]:
    out, value = [], 1
    while value <= limit:
        out.append(value)
        value *= 2
    return out


def candidates(arch: Arch, chips: int) -> Iterator[Parallel]:
    """TP/PP/EP splits of `chips`: powers of two for TP (<= 64, <= heads) and PP (<= 16, <= layers); for MoE
    models EP over any power-of-two divisor of a stage's chips that TP divides, or the whole stage, or 1."""
    for pp in _powers_of_two(min(16, arch.layers, chips)):
        if chips % pp:
            continue
        per_stage = chips // pp
        for tp in _powers_of_two(min(64, arch.heads, per_stage)):
            if per_stage % tp:
                continue
            eps = {1}
            if arch.moe_layers:
                eps |= {
                    d
                    for d in _powers_of_two(per_stage) + [per_stage]
                    if d >= 2 and per_stage % d == 0 and d % tp == 0 and d <= arch.experts * 8
                }
            for ep in sorted(eps):
                yield Parallel(tp=tp, pp=pp, ep=ep, dp=per_stage // tp)


def parse_parallel(text: str, arch: Arch, chips: int) -> Parallel:
    """`tp=8,ep=32[,pp=1]` -> Parallel for `chips` chips; one-line UsageError naming what is wrong."""
    values = {"tp": 1, "pp": 1, "ep": 1}
    for part in [p for p in str(text).split(",") if p.strip()]:
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in values:
            raise UsageError(
                f"parallel: {part!r} is not allowed; expected KEY=N with KEY one of tp, pp, ep (e.g. tp=8,ep=32)"
            )
        try:
            values[key] = int(value)
        except ValueError:
            raise UsageError(f"parallel.{key}: {value!r} is not allowed; expected a whole number >= 1") from None
        if values[key] < 1:
            raise UsageError(f"parallel.{key}: {values[key]} is not allowed; expected a whole number >= 1")
    tp, pp, ep = values["tp"], values["pp"], values["ep"]
    if chips % (tp * pp):
        raise UsageError(f"parallel: tp x pp = {tp * pp} does not divide chips = {chips}; expected a divisor")
    per_stage = chips // pp
    if ep > 1 and not arch.moe_layers:
        raise UsageError(f"parallel.ep: {ep} is not allowed for {arch.name}, which has no experts; expected 1")
    if ep > 1 and (per_stage % ep or ep % tp):
        raise UsageError(
            f"parallel.ep: {ep} is not allowed with tp={tp} on {per_stage} chips per stage; expected "
            "a divisor of the stage's chips that tp divides"
        )
    if tp > arch.heads:
        raise UsageError(f"parallel.tp: {tp} is not allowed; {arch.name} has {arch.heads} attention heads")
    return Parallel(tp=tp, pp=pp, ep=ep, dp=per_stage // tp)


def _largest_fitting_batch(fits) -> int:
    """Largest b in [1, MAX_DECODE_BATCH] with fits(b) true (fits is monotone: true then false); 0 if none."""
    if not fits(1):
        return 0
    low, high = 1, 2
    while high <= MAX_DECODE_BATCH and fits(high):
        low, high = high, high * 2
    high = min(high, MAX_DECODE_BATCH + 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def search_decode(
    arch: Arch,
    prec: Precision,
    dev: Device,
    eff: Efficiency,
    opts: Options,
    chips: int,
    input_tokens: int,
    output_tokens: int,
    tpot_slo_s: float | None = None,
    batch: int | None = None,
    parallel: Parallel | None = None,
) -> DecodePoint | None:
    """The decode configuration with the most output tokens/s per chip that fits memory and meets the TPOT
    bound; None where none does. Ties (within 0.5%) go to the lower TPOT."""
    best: DecodePoint | None = None
    splits = [parallel] if parallel else list(candidates(arch, chips))
    for par, option in ((p, o) for p in splits for o in opts.choices(arch, p)):

        def ok(b: int, par=par, option=option) -> bool:
            point = decode_point(arch, prec, par, dev, eff, option, b, input_tokens, output_tokens)
            return point.fits and (tpot_slo_s is None or point.tpot_s <= tpot_slo_s)

        b = batch if batch is not None and ok(batch) else (None if batch is not None else _largest_fitting_batch(ok))
        if not b:
            continue
        point = decode_point(arch, prec, par, dev, eff, option, b, input_tokens, output_tokens)
        if (
            best is None
            or point.tokens_per_s_per_chip > best.tokens_per_s_per_chip * 1.005
            or (point.tokens_per_s_per_chip >= best.tokens_per_s_per_chip * 0.995 and point.tpot_s < best.tpot_s)
        ):
            best = point
    return best


def search_prefill(
    arch: Arch,
    prec: Precision,
    dev: Device,
    eff: Efficiency,
    opts: Options,
    chips: int,
    input_tokens: int,
    ttft_slo_s: float | None = None,
    batch: int | None = None,
    parallel: Parallel | None = None,
) -> PrefillPoint | None:
    """The prefill configuration with the most input tokens/s per chip within the TTFT bound and memory; per
    split, the smallest prompt batch (powers of two) within 2% of that split's best rate."""
    best: PrefillPoint | None = None
    splits = [parallel] if parallel else list(candidates(arch, chips))
    for par, option in ((p, o) for p in splits for o in opts.choices(arch, p)):
        points = []
        sizes = [batch] if batch else _powers_of_two(max(1, MAX_PREFILL_TOKENS_PER_CHIP * par.tp // input_tokens))
        for b in sizes:
            point = prefill_point(arch, prec, par, dev, eff, option, b, input_tokens)
            if not point.fits or (ttft_slo_s is not None and point.ttft_s > ttft_slo_s):
                break
            points.append(point)
        if not points:
            continue
        top = max(p.tokens_per_s_per_chip for p in points)
        chosen = next(p for p in points if p.tokens_per_s_per_chip >= 0.98 * top)
        if (
            best is None
            or chosen.tokens_per_s_per_chip > best.tokens_per_s_per_chip * 1.005
            or (chosen.tokens_per_s_per_chip >= best.tokens_per_s_per_chip * 0.995 and chosen.ttft_s < best.ttft_s)
        ):
            best = chosen
    return best
