"""One step of the engine on one chip: the cost of one PP stage for one micro-batch.

Work per layer (bench.projection.arch): projections (2 FLOPs per parameter per token; weights read once per
step), the attention core (decode: every request reads its own KV cache, MLA on the latent with absorbed
weights; prefill: causal, about half of S^2), the MLP or MoE layer (router, shared experts, routed experts:
top-k per token; the weights read are those of the distinct experts a step touches, E (1 - (1 - k/E)^T) for T
tokens in the expert-parallel group under uniform routing), norms and element-wise traffic, the LM head.
Each class of work costs max(FLOPs / (eta_c peak[dtype]), bytes / (eta_m bandwidth)) with the device kind's
efficiency factors; the attribution (compute- or memory-bound) is kept for the breakdown.

Parallelism: TP splits attention heads, dense MLPs, shared experts and the LM head (two ring all-reduces per
layer); attention is data-parallel across replicas; routed experts are spread over `ep` chips (dispatch and
combine as two all-to-alls per MoE layer, expert load scaled by the imbalance factor) or, with ep = 1,
tensor-sliced with TP; PP splits the layers into stages. Micro-batch overlap: two micro-batches alternate so
the all-to-alls hide behind the other's compute; each reads the weights again and pays the launch overheads
again. Fixed costs: a per-layer overhead (launches, small kernels) and a per-step overhead (scheduler, sampling).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import UsageError
from bench.projection.deployment import Deployment
from bench.projection.interconnect import all_reduce_s, expert_all_to_all_s, p2p_s
from bench.projection.memory import kv_split

__all__ = ["StepCost", "stage_step", "distinct_expert_share"]


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
class _Batch:
    """The micro-batch a step runs: requests, query tokens each, the context they attend to, and the phase."""

    requests: float
    context: float
    decode: bool
    query_tokens: float

    @property
    def tokens(self) -> float:
        return self.requests * self.query_tokens


def distinct_expert_share(arch, tokens: float) -> float:
    """Expected share of experts that at least one of `tokens` tokens is routed to (uniform routing)."""
    if arch.experts == 0:
        return 0.0
    return 1.0 - (1.0 - arch.experts_per_token / arch.experts) ** max(tokens, 0.0)


def stage_step(dep: Deployment, requests: float, context: float, decode: bool, query_tokens: float) -> StepCost:
    """Cost of one step of one PP stage on one chip for a micro-batch of `requests` requests of `query_tokens`
    tokens each (decode: 1 or 2 with MTP; prefill: the prompt length) attending to `context` keys (decode: the
    cache length; prefill: the prompt, causal)."""
    batch = _Batch(requests, context, decode, query_tokens)
    cost = StepCost(peak_flops=dep.device.peak(dep.precision.compute), bandwidth=dep.device.bandwidth_bytes_s)
    micro = 2 if dep.overlap else 1
    share = 1.0 / dep.parallel.pp  # this stage's share of the layers
    _attention(cost, dep, batch, micro, share)
    _mlps(cost, dep, batch, micro, share)
    _elementwise(cost, dep, batch, share)
    _lm_head(cost, dep, batch, micro, share)
    _communication(cost, dep, batch.tokens, share, dep.overlap, decode)
    eff = dep.efficiency
    cost.overhead_s = eff.layer_overhead_us * 1e-6 * dep.arch.layers * share * micro + eff.step_overhead_ms * 1e-3
    cost.time_s = cost.compute_s + cost.memory_s + cost.communication_s + cost.overhead_s
    return cost


def _gemm(cost: StepCost, dep: Deployment, params_per_chip: float, tokens: float, layers: float, micro: int) -> None:
    """A projection: 2 FLOPs per parameter per token, its weights read once per micro-batch."""
    eff = dep.efficiency
    cost.add_op(
        2 * params_per_chip * tokens * layers,
        micro * params_per_chip * dep.precision.weight_bytes * layers,
        cost.peak_flops,
        eff.gemm_at(tokens / micro),
        dep.device.bandwidth_bytes_s,
        eff.memory,
    )


def _attention(cost: StepCost, dep: Deployment, batch: _Batch, micro: int, share: float) -> None:
    arch, prec, tp = dep.arch, dep.precision, dep.parallel.tp
    _gemm(cost, dep, arch.attention_params / tp, batch.tokens, arch.layers * share, micro)
    kv_per_token = arch.kv_elements_per_token_layer * prec.kv_bytes / kv_split(arch, tp)
    if batch.decode:
        core_flops = arch.attention_core_flops(batch.tokens, batch.context, decode=True) / tp
        core_bytes = batch.requests * batch.context * kv_per_token + batch.tokens * kv_per_token
    else:
        core_flops = arch.attention_core_flops(batch.tokens, (batch.context + 1) / 2, decode=False) / tp
        core_bytes = batch.tokens * (kv_per_token + 3 * arch.heads * arch.head_dim * prec.activation_bytes / tp)
    attn_peak = dep.device.peak("fp32" if prec.compute == "fp32" else "bf16")
    layers = arch.layers * share
    eff = dep.efficiency
    cost.add_op(
        core_flops * layers, core_bytes * layers, attn_peak, eff.attention, dep.device.bandwidth_bytes_s, eff.memory
    )


def _mlps(cost: StepCost, dep: Deployment, batch: _Batch, micro: int, share: float) -> None:
    """Dense MLPs, then (MoE layers) the router and shared experts, and the routed experts."""
    arch, tp = dep.arch, dep.parallel.tp
    _gemm(cost, dep, arch.dense_mlp_params / tp, batch.tokens, arch.dense_layers * share, micro)
    if arch.moe_layers:
        shared = (arch.router_params + arch.shared_experts * arch.expert_params) / tp
        _gemm(cost, dep, shared, batch.tokens, arch.moe_layers * share, micro)
        _routed_experts(cost, dep, batch.tokens, micro, share)


def _routed_experts(cost: StepCost, dep: Deployment, tokens: float, micro: int, share: float) -> None:
    arch, par, eff = dep.arch, dep.parallel, dep.efficiency
    w = dep.precision.weight_bytes
    layers = arch.moe_layers * share
    flops = 2 * tokens * arch.experts_per_token * arch.expert_params / par.tp * eff.moe_imbalance
    group_tokens = tokens * par.ep / par.tp if par.ep > 1 else tokens
    if par.ep > 1:  # whole experts spread over ep chips; tokens of ep/tp replicas meet there
        local_experts = arch.experts / par.ep
        touched = local_experts * distinct_expert_share(arch, group_tokens / micro)
        weight_bytes = touched * arch.expert_params * w * micro
    else:  # experts tensor-sliced with TP
        touched = arch.experts * distinct_expert_share(arch, tokens / micro)
        weight_bytes = touched * arch.expert_params * w * micro / par.tp
    rows_per_expert = group_tokens / micro * arch.experts_per_token / arch.experts
    cost.add_op(
        flops * layers,
        weight_bytes * layers,
        cost.peak_flops,
        eff.gemm_at(rows_per_expert),
        dep.device.bandwidth_bytes_s,
        eff.memory,
    )


def _elementwise(cost: StepCost, dep: Deployment, batch: _Batch, share: float) -> None:
    """Norms, residuals, activation functions, rope: activation traffic only."""
    arch = dep.arch
    width = (
        arch.intermediate
        if not arch.moe_layers
        else (arch.experts_per_token + arch.shared_experts) * arch.expert_intermediate
    )
    traffic = batch.tokens * (8 * arch.hidden + 3 * width) * dep.precision.activation_bytes / dep.parallel.tp
    eff = dep.efficiency
    cost.add_op(0.0, traffic * arch.layers * share, cost.peak_flops, eff.gemm, dep.device.bandwidth_bytes_s, eff.memory)


def _lm_head(cost: StepCost, dep: Deployment, batch: _Batch, micro: int, share: float) -> None:
    """Every stage carries its share of the LM head (the last stage runs it)."""
    logits = batch.tokens if batch.decode else batch.requests
    head = dep.arch.head_params / dep.parallel.tp
    eff = dep.efficiency
    cost.add_op(
        2 * head * logits * share,
        micro * head * max(dep.precision.weight_bytes, 2.0) * share,
        cost.peak_flops,
        eff.gemm_at(logits / micro),
        dep.device.bandwidth_bytes_s,
        eff.memory,
    )


def _communication(cost: StepCost, dep: Deployment, tokens: float, share: float, overlap: bool, decode: bool) -> None:
    arch, par, prec, eff = dep.arch, dep.parallel, dep.precision, dep.efficiency
    if par.chips == 1 and par.ep == 1:
        return
    links = dep.device.links(eff)
    if links is None:
        if dep.device.profile is not None:
            dep.device.profile.link("scaleup_gbs")  # raises the profile's own one-line error
        raise UsageError(
            f"chips: {par.chips} is not allowed on {dep.device.key}, which has no interconnect figures; expected 1"
        )
    message = tokens * arch.hidden * prec.activation_bytes
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

        a2a_s = (a2a(arch.hidden * prec.dispatch_bytes) + a2a(arch.hidden * prec.activation_bytes)) * arch.moe_layers
        a2a_s *= share
    pp_s = p2p_s(links, par.replica_chips > links.domain, message) if par.pp > 1 else 0.0
    cost.communication_total_s = reduce_s + a2a_s + pp_s
    exposed_a2a = max(0.0, a2a_s - (cost.compute_s + cost.memory_s)) if overlap else a2a_s
    cost.communication_s = reduce_s + exposed_a2a + pp_s
