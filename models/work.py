"""Work per call: FLOPs and the minimum bytes a call must move, so results can state achieved FLOP/s and
bandwidth use.

Two independent FLOP figures:
- counted: `count_flops` runs one real call under `torch.utils.flop_counter.FlopCounterMode`, which counts the
  matrix products (mm, bmm, addmm, convolution, scaled-dot-product attention) the model actually dispatched;
- analytic: `analytic_flops` computes the same from the published config alone, for the transformer
  entries, with the counter's conventions: a multiply-add is 2 FLOPs; attention scores and the weighted sum
  cost 2 x heads x query tokens x key tokens x (d_qk + d_v) per layer with no causal discount (SDPA is
  counted as a full product); element-wise work (norms, activations, softmax, RoPE) is not counted.
The tests hold the two within 5% of each other.

Minimum bytes (analytic): every forward pass reads each weight it uses once (the input embedding contributes
only its looked-up rows; a mixture-of-experts layer reads its shared experts and `experts_per_token` routed
experts per token, at most all of them), decode steps also read the KV cache written so far, and the call
reads its inputs and writes its outputs. Caches never make a call move less than this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["count_flops", "analytic_flops", "min_bytes", "Shape"]


@dataclass(frozen=True)
class Shape:
    """What one call processes."""

    batch: int
    seq: int | None  # tokens per sequence (prompt), None for images
    new_tokens: int | None  # generated tokens per sequence, None unless generating
    logits_last_only: bool = True  # prefill computes logits for the last position only


def _register_cpu_attention_formula() -> None:
    """Teach the FLOP counter the CPU flash-attention kernel, which torch leaves unregistered (so attention on the
    CPU would count as 0). Same convention as torch's formula for the GPU kernels: two full products."""
    import torch
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(op)
    def _cpu_flash_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        batch, heads, queries, d_qk = query_shape
        keys, d_v = key_shape[2], value_shape[3]
        return 2 * batch * heads * queries * keys * (d_qk + d_v)


def _register_grouped_mm_formula() -> None:
    """Teach the FLOP counter `aten._grouped_mm` (transformers' batched MoE experts), which torch leaves
    unregistered: each group multiplies its rows by its own (K x N) matrix, so 2 x total rows x K x N. With 2-D
    activations and 3-D weights (the experts' case) the rows of all groups sum to the activations' rows."""
    import torch
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_grouped_mm", None)
    if op is None or op in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(op)
    def _grouped_mm(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
        if len(a_shape) == 2 and len(b_shape) == 3:  # (rows, K) x (groups, K, N)
            return 2 * a_shape[0] * a_shape[1] * b_shape[2]
        if len(a_shape) == 3 and len(b_shape) == 3:  # (groups, M, K) x (groups, K, N)
            return 2 * a_shape[0] * a_shape[1] * a_shape[2] * b_shape[2]
        return 2 * a_shape[0] * a_shape[-1] * b_shape[-1]


def count_flops(call: Callable[[Callable[[], int]], Any], stamp: Callable[[], int]) -> int:
    """FLOPs of one real call, counted at the dispatcher."""
    from torch.utils.flop_counter import FlopCounterMode

    _register_cpu_attention_formula()
    _register_grouped_mm_formula()
    with FlopCounterMode(display=False) as counter:
        call(stamp)
    return int(counter.get_total_flops())


# ---------------------------------------------------------------------------------------------------------
# per-architecture pieces, from the published config


def _get(cfg: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        if cfg.get(name) is not None:
            return cfg[name]
    return default


def _attention_dims(cfg: Mapping[str, Any]) -> tuple[int, int, int, int]:
    """(heads, kv heads, d_qk, d_v)."""
    hidden = _get(cfg, "hidden_size", "n_embd")
    heads = _get(cfg, "num_attention_heads", "n_head")
    kv_heads = _get(cfg, "num_key_value_heads", default=heads)
    if cfg.get("kv_lora_rank"):  # DeepSeek multi-head latent attention
        return heads, heads, cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    head_dim = _get(cfg, "head_dim", default=hidden // heads)
    return heads, kv_heads, head_dim, head_dim


def _attention_projection_params(cfg: Mapping[str, Any]) -> int:
    """Weights of one layer's q/k/v/o projections (biases are not multiplies)."""
    hidden = _get(cfg, "hidden_size", "n_embd")
    heads, kv_heads, d_qk, d_v = _attention_dims(cfg)
    if cfg.get("kv_lora_rank"):
        q_rank = cfg.get("q_lora_rank")
        q = hidden * q_rank + q_rank * heads * d_qk if q_rank else hidden * heads * d_qk
        kv = hidden * (cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"]) + cfg["kv_lora_rank"] * heads * (
            cfg["qk_nope_head_dim"] + d_v
        )
        return q + kv + heads * d_v * hidden
    return hidden * heads * d_qk + 2 * hidden * kv_heads * d_qk + heads * d_v * hidden


def _mlp_params_per_token(cfg: Mapping[str, Any], layer: int) -> int:
    """Weights one token multiplies through in one layer's MLP (dense, or router + shared + routed experts)."""
    hidden = _get(cfg, "hidden_size", "n_embd")
    model_type = cfg["model_type"]
    if model_type in ("gpt2", "gptj"):
        return 2 * hidden * (cfg.get("n_inner") or 4 * hidden)
    if model_type in ("bert", "vit"):
        return 2 * hidden * cfg["intermediate_size"]
    experts = _get(cfg, "n_routed_experts", "num_experts", "num_local_experts")
    dense_layers = cfg.get("first_k_dense_replace", 0)
    if not experts or layer < dense_layers or layer in cfg.get("mlp_only_layers", []):
        return 3 * hidden * cfg["intermediate_size"]
    moe = cfg.get("moe_intermediate_size") or cfg["intermediate_size"]  # Mixtral: every expert at intermediate_size
    shared = cfg.get("n_shared_experts") or 0
    return hidden * experts + 3 * hidden * moe * (shared + cfg["num_experts_per_tok"])


def _layers(cfg: Mapping[str, Any]) -> int:
    return _get(cfg, "num_hidden_layers", "n_layer")


def _vocab_head(cfg: Mapping[str, Any]) -> int:
    return _get(cfg, "hidden_size", "n_embd") * cfg["vocab_size"]


def _forward_flops(cfg: Mapping[str, Any], batch: int, queries: int, keys: int, logits_tokens: int) -> float:
    """One forward pass of `queries` new tokens per sequence attending to `keys` positions."""
    heads, _, d_qk, d_v = _attention_dims(cfg)
    tokens = batch * queries
    flops = 0.0
    for layer in range(_layers(cfg)):
        flops += 2 * tokens * (_attention_projection_params(cfg) + _mlp_params_per_token(cfg, layer))
        flops += 2 * batch * heads * queries * keys * (d_qk + d_v)
    return flops + 2 * batch * logits_tokens * _vocab_head(cfg)


def analytic_flops(cfg: Mapping[str, Any], shape: Shape) -> float | None:
    """FLOPs of one call from the config alone; None for architectures without a formula here (ResNet)."""
    model_type = cfg["model_type"]
    if model_type == "resnet":
        return None
    hidden = _get(cfg, "hidden_size", "n_embd")
    if model_type == "vit":
        patches = (cfg["image_size"] // cfg["patch_size"]) ** 2
        tokens = patches + 1
        body = _forward_flops({**cfg, "vocab_size": 0}, shape.batch, tokens, tokens, 0)
        patch_embedding = 2 * shape.batch * patches * cfg["num_channels"] * cfg["patch_size"] ** 2 * hidden
        return body + patch_embedding + 2 * shape.batch * hidden * cfg["num_labels"]
    if model_type == "bert":
        body = _forward_flops({**cfg, "vocab_size": 0}, shape.batch, shape.seq, shape.seq, 0)
        return body + 2 * shape.batch * hidden * hidden  # pooler
    prefill_logits = 1 if shape.logits_last_only else shape.seq
    flops = _forward_flops(cfg, shape.batch, shape.seq, shape.seq, prefill_logits)
    for step in range(1, shape.new_tokens or 0):
        flops += _forward_flops(cfg, shape.batch, 1, shape.seq + step, 1)
    return flops


def _kv_bytes_per_position(cfg: Mapping[str, Any], element_bytes: int) -> int:
    """Bytes of KV cache one position adds across all layers."""
    heads, kv_heads, d_qk, d_v = _attention_dims(cfg)
    if cfg.get("kv_lora_rank"):
        # transformers' eager MLA caches the decompressed keys and values per head
        per_layer = heads * (d_qk + d_v)
    else:
        per_layer = kv_heads * (d_qk + d_v)
    return _layers(cfg) * per_layer * element_bytes


def min_bytes(
    cfg: Mapping[str, Any],
    shape: Shape,
    weight_params: int,
    active_params: int,
    embedding_params: int,
    element_bytes: int,
) -> float:
    """Minimum bytes one call moves (see the module docstring).

    weight_params     all parameters (from the built model)
    active_params     parameters one token uses, without the input embedding table (models.facts)
    embedding_params  parameters of the input embedding table
    """
    hidden = _get(cfg, "hidden_size", "n_embd", default=0)
    tokens_in = shape.batch * (shape.seq or 0)
    touched_rows = min(tokens_in, cfg.get("vocab_size", 0)) * hidden
    routed_all = weight_params - embedding_params - active_params  # unused routed experts, if any
    if shape.new_tokens is None:
        weights = active_params + touched_rows + (routed_all if tokens_in > 1 else 0)
        inputs = tokens_in * 8 if shape.seq else shape.batch * 3 * (cfg.get("image_size", 0) ** 2) * element_bytes
        return weights * element_bytes + inputs
    passes = shape.new_tokens
    tied_head = embedding_params if cfg.get("tie_word_embeddings", True) else 0  # logits read the shared table
    per_pass = (active_params + tied_head) * element_bytes
    total = passes * per_pass + (routed_all if tokens_in > 1 else 0) * element_bytes  # prefill touches all experts
    kv = _kv_bytes_per_position(cfg, element_bytes)
    for step in range(1, shape.new_tokens):
        total += shape.batch * kv * (shape.seq + step)  # decode reads the cache so far (and writes one position)
    return total + tokens_in * 8 + shape.batch * shape.new_tokens * 8
