"""A decoder LLM's architecture as the serving model needs it, read from its published config.

Everything is counted per layer from the config's fields (no model is built): projections of attention
(MHA/GQA: q, k, v, o; MLA: the q low-rank path, the joint kv down-projection, the kv up-projection and o),
the MLP (gated: gate, up, down; GPT-2/GPT-J style: up, down), mixture-of-experts layers (router, shared experts,
routed experts of width `moe_intermediate_size`), the embedding table and the LM head. Biases and norms are
left out (< 0.1% of parameters for every catalogue entry); the catalogue tests check the total against the
model built by transformers.

KV cache per token per layer, in elements: MHA/GQA 2 x kv_heads x head_dim; MLA kv_lora_rank + qk_rope_head_dim
(the latent and the shared rope key, which decode reads directly: the up-projections are absorbed into the
query and output sides, so the latent is never re-expanded over the context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from bench.core.errors import UsageError

__all__ = ["Arch", "arch_of"]


@dataclass(frozen=True)
class Arch:
    name: str
    layers: int
    hidden: int
    vocab: int
    heads: int
    kv_heads: int
    head_dim: int
    attention: str  # "mha", "gqa" or "mla"
    # MLA only
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # MLP / MoE
    intermediate: int = 0
    gated_mlp: bool = True
    moe_layers: int = 0
    experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    expert_intermediate: int = 0
    routing_groups: int = 0  # group-limited routing (DeepSeek-V3: experts in 8 groups, a token uses at most 4)
    routing_group_limit: int = 0
    tied_embeddings: bool = False
    position_embeddings: int = 0  # learned absolute positions (GPT-2): a table read one row per token
    mtp_layers: int = 0  # multi-token prediction modules (DeepSeek-V3: one), usable as speculative drafters

    # -- parameters ------------------------------------------------------------------------------------------

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    @property
    def attention_params(self) -> int:
        """Projection parameters of one attention layer."""
        h = self.hidden
        if self.attention == "mla":
            qk = self.qk_nope_head_dim + self.qk_rope_head_dim
            q = (
                h * self.heads * qk
                if not self.q_lora_rank
                else h * self.q_lora_rank + self.q_lora_rank * self.heads * qk
            )
            kv_down = h * (self.kv_lora_rank + self.qk_rope_head_dim)
            kv_up = self.kv_lora_rank * self.heads * (self.qk_nope_head_dim + self.v_head_dim)
            return q + kv_down + kv_up + self.heads * self.v_head_dim * h
        return h * self.heads * self.head_dim * 2 + h * self.kv_heads * self.head_dim * 2

    def _mlp_params(self, width: int) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden * width

    @property
    def dense_mlp_params(self) -> int:
        return self._mlp_params(self.intermediate)

    @property
    def expert_params(self) -> int:
        """Parameters of one routed (or shared) expert."""
        return self._mlp_params(self.expert_intermediate)

    @property
    def router_params(self) -> int:
        return self.hidden * self.experts

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def head_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def routed_params(self) -> int:
        return self.moe_layers * self.experts * self.expert_params

    @property
    def total_params(self) -> int:
        per_moe = self.router_params + self.shared_experts * self.expert_params
        body = (
            self.layers * self.attention_params
            + self.dense_layers * self.dense_mlp_params
            + self.moe_layers * per_moe
            + self.routed_params
        )
        return (
            body
            + self.embedding_params
            + self.position_embeddings * self.hidden
            + (0 if self.tied_embeddings else self.head_params)
        )

    @property
    def active_params(self) -> int:
        """Parameters one token runs through (routed experts: top-k of them), without the input embedding."""
        routed_active = self.moe_layers * self.experts_per_token * self.expert_params
        return (
            self.total_params
            - self.routed_params
            + routed_active
            - self.embedding_params
            - (self.position_embeddings * self.hidden)
            + (self.head_params if self.tied_embeddings else 0)
        )

    # -- KV cache and attention ------------------------------------------------------------------------------

    @property
    def kv_elements_per_token_layer(self) -> int:
        if self.attention == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_heads * self.head_dim

    def attention_core_flops(self, tokens: int, context: float, decode: bool) -> float:
        """FLOPs of scores and weighted values for `tokens` query tokens attending to `context` keys each
        (per layer). MLA in decode works on the latent (absorbed weights): per head, dot products of width
        kv_lora_rank + rope dim and values of width kv_lora_rank; in prefill it runs as ordinary attention over
        the expanded heads (qk_nope + rope, v_head_dim)."""
        if self.attention == "mla":
            if decode:
                width_qk, width_v = self.kv_lora_rank + self.qk_rope_head_dim, self.kv_lora_rank
            else:
                width_qk, width_v = self.qk_nope_head_dim + self.qk_rope_head_dim, self.v_head_dim
        else:
            width_qk = width_v = self.head_dim
        return 2.0 * tokens * context * self.heads * (width_qk + width_v)


def _get(config: Mapping[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return default


def arch_of(name: str, config: Mapping[str, Any]) -> Arch:
    """The serving model's view of a catalogue entry's config; a one-line UsageError for a non-decoder."""
    model_type = config.get("model_type")
    hidden = _get(config, "hidden_size", "n_embd")
    layers = _get(config, "num_hidden_layers", "n_layer")
    heads = _get(config, "num_attention_heads", "n_head")
    if hidden is None or layers is None or heads is None or "vocab_size" not in config:
        raise UsageError(
            f"model: {name!r} is not a decoder language model the serving model describes "
            f"(model_type {model_type!r}); expected a generate workload"
        )
    hidden, layers, heads = int(hidden), int(layers), int(heads)
    kv_heads = int(_get(config, "num_key_value_heads", default=heads))
    head_dim = int(_get(config, "head_dim", default=hidden // heads))
    gpt_style = model_type in ("gpt2", "gptj", "gpt_neox")
    intermediate = int(_get(config, "intermediate_size", "n_inner", default=4 * hidden))
    common = dict(
        name=name,
        layers=layers,
        hidden=hidden,
        vocab=int(config["vocab_size"]),
        heads=heads,
        head_dim=head_dim,
        intermediate=intermediate,
        gated_mlp=not gpt_style,
        tied_embeddings=bool(config.get("tie_word_embeddings", gpt_style)),
        position_embeddings=int(config.get("n_positions") or 0) if model_type == "gpt2" else 0,
        mtp_layers=int(config.get("num_nextn_predict_layers") or 0),
    )
    if config.get("kv_lora_rank"):
        common.update(
            attention="mla",
            kv_heads=heads,
            q_lora_rank=config.get("q_lora_rank"),
            kv_lora_rank=int(config["kv_lora_rank"]),
            qk_nope_head_dim=int(config["qk_nope_head_dim"]),
            qk_rope_head_dim=int(config["qk_rope_head_dim"]),
            v_head_dim=int(config["v_head_dim"]),
        )
    else:
        common.update(attention="gqa" if kv_heads < heads else "mha", kv_heads=kv_heads)
    experts = _get(config, "n_routed_experts", "num_experts", "num_local_experts")
    if experts:
        common.update(_moe_fields(config, layers, int(experts), intermediate))
    return Arch(**common)


def _moe_fields(config: Mapping[str, Any], layers: int, experts: int, intermediate: int) -> dict[str, Any]:
    if "first_k_dense_replace" in config:  # DeepSeek: the first k layers dense, then every moe_layer_freq-th
        freq = int(config.get("moe_layer_freq") or 1)
        first = int(config["first_k_dense_replace"])
        moe_layers = sum(1 for i in range(layers) if i >= first and i % freq == 0)
    else:  # Qwen-MoE: every decoder_sparse_step-th layer unless listed in mlp_only_layers
        step = int(config.get("decoder_sparse_step") or 1)
        dense_only = set(config.get("mlp_only_layers") or ())
        moe_layers = sum(1 for i in range(layers) if i not in dense_only and (i + 1) % step == 0)
    return dict(
        moe_layers=moe_layers,
        experts=experts,
        experts_per_token=int(config["num_experts_per_tok"]),
        shared_experts=int(config.get("n_shared_experts") or 0),
        routing_groups=int(config.get("n_group") or 0) if int(config.get("topk_group") or 0) > 0 else 0,
        routing_group_limit=int(config.get("topk_group") or 0) if int(config.get("n_group") or 0) > 1 else 0,
        expert_intermediate=int(_get(config, "moe_intermediate_size", default=intermediate)),
    )
