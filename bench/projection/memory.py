"""Memory per chip of a deployment: weights, KV cache, activations, against the usable share of the device.

- Weights: attention, dense MLPs, shared experts and the router split over TP; routed experts over EP (or over
  TP where EP is 1); the layers over PP; the embedding and LM head kept 16-bit when the rest is quantized.
- KV cache: one request's cache at its longest context on one chip of its replica (GQA/MHA heads split over TP
  up to the KV head count; an MLA latent is not split: every TP rank of the replica holds it). A stage holds
  pp micro-batches x its layers / pp: the same as every layer for one micro-batch.
- Activations: the widest intermediate of the batch's tokens, and fp32 logits over the vocabulary.
A configuration that does not fit is reported as not fitting, with the numbers, never projected.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.projection.arch import Arch
from bench.projection.deployment import BYTES, Deployment, Parallel, Precision

__all__ = ["Memory", "memory", "weight_bytes_per_chip", "kv_bytes_per_request_chip", "kv_split"]


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


def kv_split(arch: Arch, tp: int) -> int:
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
    """KV cache one request occupies on one chip of its replica, over all the replica's layers on that chip."""
    return context * arch.kv_elements_per_token_layer * BYTES[prec.kv] * arch.layers / kv_split(arch, par.tp)


def _activation_bytes(dep: Deployment, tokens: float, logits_tokens: float) -> float:
    arch = dep.arch
    width = max(arch.intermediate, (arch.experts_per_token + arch.shared_experts) * arch.expert_intermediate)
    hidden = tokens * (4 * arch.hidden + 2 * width) * dep.precision.activation_bytes
    return hidden + logits_tokens * arch.vocab * 4 / dep.parallel.tp


def usable_bytes(dep: Deployment, weights: float) -> float:
    """Memory an engine gives to weights, KV cache and activations: `memory_usable` of the device's memory, or --
    for an engine that sizes its KV cache as a fraction of the memory left after loading the weights
    (TensorRT-LLM's kv_cache_free_gpu_mem_fraction) -- the weights plus that fraction of the rest."""
    total = dep.device.memory_bytes
    fraction = dep.efficiency.memory_usable
    if dep.engine is not None and dep.engine.memory_rule == "free" and weights < total:
        return weights + fraction * (total - weights)
    return total * fraction


def memory(dep: Deployment, requests: float, context: float, tokens: float, logits_tokens: float) -> Memory:
    """Memory per chip with `requests` requests of `context` tokens cached and `tokens` tokens in flight."""
    weights = weight_bytes_per_chip(dep.arch, dep.precision, dep.parallel)
    return Memory(
        weights,
        requests * kv_bytes_per_request_chip(dep.arch, dep.precision, dep.parallel, context),
        _activation_bytes(dep, tokens, logits_tokens),
        usable_bytes(dep, weights),
    )
