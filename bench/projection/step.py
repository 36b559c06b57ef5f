"""One step of the engine on one chip: the cost of one PP stage for one micro-batch of work (`StepWork`).

A step's work is decoding requests (each verifying 1 token, or K + 1 with speculative decoding, against its own
KV cache) and prompt tokens being prefilled (whole prompts on a prefill instance; chunks beside the decode batch
in colocated serving). Per layer (bench.projection.arch):
- projections: 2 FLOPs per parameter per token, weights read once per micro-batch;
- the attention core: decode reads every request's cache (MLA on the latent, absorbed weights); prefill is
  causal over the prompt (mean context: half of it);
- MLP or MoE: router, shared experts, routed experts (top-k per token; weights read are those of the distinct
  experts the step's tokens touch, E (1 - (1 - k/E)^T) under uniform routing); the experts' grouped GEMM reaches
  `grouped_gemm_at(tokens per expert)` of the GEMM efficiency; across expert-parallel ranks the busiest rank
  carries `moe_imbalance` (or `moe_imbalance_eplb` where the engine balances expert load) times the mean;
- norms and element-wise traffic; the LM head for the tokens that need logits.
Each class of work costs max(FLOPs / (eta_c peak[dtype]), bytes / (eta_m bandwidth)).

Communication: TP all-reduces (two per layer); expert dispatch and combine per MoE layer, each a bandwidth term
over the scale-up and scale-out links (bench.projection.interconnect), the link's latency and a fixed
`a2a_overhead_us`; PP hand-offs. Micro-batch overlap (where the engine has it): two micro-batches alternate so
the all-to-alls hide behind the other's compute; each reads the weights and pays the launch costs again.
Fixed costs: `layer_overhead_us` per layer and `step_overhead_ms` per step. Every figure is the device kind's
efficiency factor scaled by the engine's kernels factor (bench.projection.engines): only the figures differ
between devices and engines, never the structure.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.errors import UsageError
from bench.projection.deployment import Deployment
from bench.projection.interconnect import all_reduce_s, expert_all_to_all_s, p2p_s
from bench.projection.memory import kv_split

__all__ = ["StepCost", "StepWork", "stage_step", "draft_cost_s", "distinct_expert_share"]


@dataclass
class StepCost:
    """One step of one PP stage on one chip."""

    time_s: float = 0.0
    compute_s: float = 0.0
    memory_s: float = 0.0
    communication_s: float = 0.0  # exposed (not hidden by overlap)
    communication_total_s: float = 0.0
    overhead_s: float = 0.0
    draft_s: float = 0.0  # speculative drafting (included in time_s)
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
            "draft_ms": self.draft_s * 1e3,
        }


@dataclass(frozen=True)
class StepWork:
    """What one replica micro-batch does in one step: decoding requests and prompt tokens being prefilled."""

    decode_requests: float = 0.0
    query_tokens: float = 1.0  # per decoding request: 1, or K + 1 with speculative decoding
    context: float = 0.0  # the decoding requests' mean cache length
    prefill_tokens: float = 0.0
    prefill_context: float = 0.0  # mean causal context of the prefilled tokens (about half the prompt)
    prefill_requests: float = 0.0  # prompts finishing their prefill this step (they need logits)

    @property
    def decode_tokens(self) -> float:
        return self.decode_requests * self.query_tokens

    @property
    def tokens(self) -> float:
        return self.decode_tokens + self.prefill_tokens

    @property
    def logits_rows(self) -> float:
        return self.decode_tokens + self.prefill_requests

    @classmethod
    def decode(cls, requests: float, query_tokens: float, context: float) -> "StepWork":
        return cls(decode_requests=requests, query_tokens=query_tokens, context=context)

    @classmethod
    def prefill(cls, prompts: float, prompt_tokens: float) -> "StepWork":
        return cls(
            prefill_tokens=prompts * prompt_tokens,
            prefill_context=(prompt_tokens + 1) / 2,
            prefill_requests=prompts,
        )


def distinct_expert_share(arch, tokens: float) -> float:
    """Expected share of experts that at least one of `tokens` tokens is routed to (uniform routing)."""
    if arch.experts == 0:
        return 0.0
    return 1.0 - (1.0 - arch.experts_per_token / arch.experts) ** max(tokens, 0.0)


def stage_step(dep: Deployment, work: StepWork, step_overhead: bool = True) -> StepCost:
    """Cost of one step of one PP stage on one chip for `work` (module docstring); speculative drafting is
    added by the callers (`draft_cost_s`)."""
    cost = StepCost(peak_flops=dep.device.peak(dep.precision.compute), bandwidth=dep.device.bandwidth_bytes_s)
    micro = 2 if dep.overlap else 1
    share = 1.0 / dep.parallel.pp  # this stage's share of the layers
    _attention(cost, dep, work, micro, share)
    _mlps(cost, dep, work.tokens, micro, share)
    _elementwise(cost, dep, work.tokens, share)
    _lm_head(cost, dep, work.logits_rows, micro, share)
    _communication(cost, dep, work.tokens, share, decode=work.prefill_tokens == 0)
    eff = dep.efficiency
    cost.overhead_s = eff.layer_overhead_us * 1e-6 * dep.arch.layers * share * micro
    if step_overhead:
        cost.overhead_s += eff.step_overhead_ms * 1e-3
    cost.time_s = cost.compute_s + cost.memory_s + cost.communication_s + cost.overhead_s
    return cost


def draft_cost_s(dep: Deployment, requests: float, context: float) -> float:
    """Time of one step's drafting for `requests` decoding requests: K draft passes of one layer of the target
    (MTP, EAGLE-3: attention and the layer's MLP or MoE, plus the LM head), or of a draft model's full forward."""
    spec, draft = dep.options.speculation, dep.draft
    if spec is None or draft is None:
        return 0.0
    pass_s = stage_step(draft, StepWork.decode(requests, 1, context), step_overhead=False).time_s
    return spec.tokens * pass_s


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


def _attention(cost: StepCost, dep: Deployment, work: StepWork, micro: int, share: float) -> None:
    arch, prec, tp = dep.arch, dep.precision, dep.parallel.tp
    _gemm(cost, dep, arch.attention_params / tp, work.tokens, arch.layers * share, micro)
    kv_per_token = arch.kv_elements_per_token_layer * prec.kv_bytes / kv_split(arch, tp)
    flops = bytes_ = 0.0
    if work.decode_requests:
        flops += arch.attention_core_flops(work.decode_tokens, work.context, decode=True) / tp
        bytes_ += work.decode_requests * work.context * kv_per_token + work.decode_tokens * kv_per_token
    if work.prefill_tokens:
        flops += arch.attention_core_flops(work.prefill_tokens, work.prefill_context, decode=False) / tp
        activations = 3 * arch.heads * arch.head_dim * prec.activation_bytes / tp
        bytes_ += work.prefill_tokens * (kv_per_token + activations)
    attn_peak = dep.device.peak(_attention_dtype(dep))
    layers = arch.layers * share
    eff = dep.efficiency
    cost.add_op(flops * layers, bytes_ * layers, attn_peak, eff.attention, dep.device.bandwidth_bytes_s, eff.memory)


def _attention_dtype(dep: Deployment) -> str:
    """The attention core runs at the KV cache's precision where that is 8-bit and the chip has a peak for it
    (FP8 FlashMLA / FlashAttention-3 FP8, INT8 attention), else at 16 bits (fp16 on a chip without bf16; 32 at
    fp32)."""
    prec = dep.precision
    if prec.compute == "fp32":
        return "fp32"
    if prec.kv in ("fp8", "int8") and prec.kv in dep.device.peak_flops:
        return prec.kv
    return "bf16" if "bf16" in dep.device.peak_flops or "fp16" not in dep.device.peak_flops else "fp16"


def _mlps(cost: StepCost, dep: Deployment, tokens: float, micro: int, share: float) -> None:
    """Dense MLPs, then (MoE layers) the router and shared experts, and the routed experts."""
    arch, tp = dep.arch, dep.parallel.tp
    _gemm(cost, dep, arch.dense_mlp_params / tp, tokens, arch.dense_layers * share, micro)
    if arch.moe_layers:
        shared = (arch.router_params + arch.shared_experts * arch.expert_params) / tp
        _gemm(cost, dep, shared, tokens, arch.moe_layers * share, micro)
        _routed_experts(cost, dep, tokens, micro, share)


def _imbalance(dep: Deployment) -> float:
    """Busiest expert rank over the mean: 1 without expert parallelism (every chip holds a slice of every
    expert), else with or without load balancing as the engine runs it."""
    if dep.parallel.ep <= 1:
        return 1.0
    return dep.efficiency.moe_imbalance_eplb if dep.eplb else dep.efficiency.moe_imbalance


def _routed_experts(cost: StepCost, dep: Deployment, tokens: float, micro: int, share: float) -> None:
    arch, par, eff = dep.arch, dep.parallel, dep.efficiency
    w = dep.precision.weight_bytes
    layers = arch.moe_layers * share
    flops = 2 * tokens * arch.experts_per_token * arch.expert_params / par.tp * _imbalance(dep)
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
        eff.grouped_gemm_at(rows_per_expert),
        dep.device.bandwidth_bytes_s,
        eff.memory,
    )


def _elementwise(cost: StepCost, dep: Deployment, tokens: float, share: float) -> None:
    """Norms, residuals, activation functions, rope: activation traffic only."""
    arch = dep.arch
    width = (
        arch.intermediate
        if not arch.moe_layers
        else (arch.experts_per_token + arch.shared_experts) * arch.expert_intermediate
    )
    traffic = tokens * (8 * arch.hidden + 3 * width) * dep.precision.activation_bytes / dep.parallel.tp
    eff = dep.efficiency
    cost.add_op(0.0, traffic * arch.layers * share, cost.peak_flops, eff.gemm, dep.device.bandwidth_bytes_s, eff.memory)


def _lm_head(cost: StepCost, dep: Deployment, rows: float, micro: int, share: float) -> None:
    """Every stage carries its share of the LM head (the last stage runs it)."""
    head = dep.arch.head_params / dep.parallel.tp
    eff = dep.efficiency
    cost.add_op(
        2 * head * rows * share,
        micro * head * max(dep.precision.weight_bytes, 2.0) * share,
        cost.peak_flops,
        eff.gemm_at(rows / micro),
        dep.device.bandwidth_bytes_s,
        eff.memory,
    )


def _links(dep: Deployment):
    links = dep.device.links(dep.efficiency)
    if links is None:
        if dep.device.profile is not None:
            dep.device.profile.link("scaleup_gbs")  # raises the profile's own one-line error
        raise UsageError(
            f"chips: {dep.parallel.chips} is not allowed on {dep.device.key}, which has no interconnect figures; "
            "expected 1"
        )
    return links


def _expert_all_to_alls(dep: Deployment, links, tokens: float, decode: bool) -> float:
    """Dispatch (at the dispatch precision) and combine (16-bit) of one step, every MoE layer of every stage."""
    arch, par, prec, eff = dep.arch, dep.parallel, dep.precision, dep.efficiency
    per_chip = tokens / par.tp * _imbalance(dep)
    limit = arch.routing_group_limit if arch.routing_groups else 0
    total = 0.0
    for token_bytes in (arch.hidden * prec.dispatch_bytes, arch.hidden * prec.activation_bytes):
        total += expert_all_to_all_s(
            links, par.ep, per_chip, arch.experts_per_token, token_bytes, dedup_by_domain=not decode, domain_limit=limit
        )
        total += eff.a2a_overhead_us * 1e-6
    return total * arch.moe_layers


def _communication(cost: StepCost, dep: Deployment, tokens: float, share: float, decode: bool) -> None:
    arch, par = dep.arch, dep.parallel
    if par.chips == 1 and par.ep == 1:
        return
    links = _links(dep)
    message = tokens * arch.hidden * dep.precision.activation_bytes
    # TP: an all-reduce after attention and after each MLP that is tensor-parallel
    tp_reduces = arch.layers + arch.dense_layers + (arch.moe_layers if par.ep == 1 else 0)
    reduce_s = all_reduce_s(links, par.tp, message) * tp_reduces * share
    a2a_s = _expert_all_to_alls(dep, links, tokens, decode) * share if par.ep > 1 and arch.moe_layers else 0.0
    pp_s = p2p_s(links, par.replica_chips > links.domain, message) if par.pp > 1 else 0.0
    cost.communication_total_s = reduce_s + a2a_s + pp_s
    exposed_a2a = max(0.0, a2a_s - (cost.compute_s + cost.memory_s)) if dep.overlap else a2a_s
    cost.communication_s = reduce_s + exposed_a2a + pp_s
