"""Causal LM family (GPT-2, Llama, Qwen...): prefill the prompt, then greedy decode with the KV cache.

One call = one request batch: a prefill over batch x seq_len tokens that yields the first output token, then
new_tokens - 1 decode steps of one token each, reusing the KV cache. Sampling is greedy (argmax) and EOS is
ignored, so every call produces exactly new_tokens tokens per sequence. The call stamps the clock (device
synchronised) after each token step; the record derives TTFT, TPOT and ITL from those stamps.

The prefill computes logits for the last position only where the model supports it (`logits_to_keep`), as
serving engines do.
"""

from __future__ import annotations

import torch

from bench.core.calls import ExportSpec, PreparedCall
from models.base import Workload
from models.families.common import OutputOf, build_model, finish_model, forward_accepts, seeded_token_ids, take_rows

AUTO_CLASS = "AutoModelForCausalLM"


def _cache_argument(model) -> str:
    # transformers 5.2x renamed `past_key_values` to `cache`; older releases only know the former.
    return "cache" if forward_accepts(model, "cache") else "past_key_values"


def _cache_of(output):
    cache = output.get("cache") if hasattr(output, "get") else None
    return cache if cache is not None else output.past_key_values


def prepare(
    workload: Workload, dtype: torch.dtype, device: str, spec, attn_implementation: str | None = None, transform=None
) -> PreparedCall:
    raw, weights = build_model(workload, AUTO_CLASS, dtype, device, spec.weights, attn_implementation)
    new_tokens = spec.new_tokens or workload.default_new_tokens or 1
    ids = seeded_token_ids(spec.batch_size, spec.seq_len, workload.config["vocab_size"], device)
    mask = torch.ones_like(ids)
    # on the meta device (tracing models too large to run) transformers' check "is the mask all ones?" would read
    # a value; without a mask it builds the same causal mask from shapes alone (see _Generate)
    cache_arg = _cache_argument(raw)  # asked of the plain model: a compiled wrapper hides forward's signature
    prefill_extra = {"logits_to_keep": 1} if forward_accepts(raw, "logits_to_keep") else {}
    model, facts = finish_model(raw, dtype, weights, transform)
    facts["decoding"] = "greedy, EOS ignored, KV cache"
    generate = _Generate(model, new_tokens, cache_arg, prefill_extra, meta=str(device) == "meta")
    prepared = generate.calls(ids, facts)
    prepared.export = ExportSpec(
        OutputOf(raw, ["input_ids", "attention_mask"], lambda out: out.logits, use_cache=False),
        {"input_ids": ids, "attention_mask": mask},
        "logits",
    )
    return prepared


class _Generate:
    """Greedy generation of `new_tokens` tokens per sequence with the KV cache, on any batch of prompts."""

    def __init__(self, model, new_tokens: int, cache_arg: str, prefill_extra: dict, meta: bool) -> None:
        self.model, self.new_tokens, self.cache_arg, self.prefill_extra = model, new_tokens, cache_arg, prefill_extra
        self.meta = meta

    def calls(self, ids: torch.Tensor, facts: dict) -> PreparedCall:
        model, new_tokens, cache_arg = self.model, self.new_tokens, self.cache_arg
        mask = torch.ones_like(ids)
        call_mask = None if self.meta else mask

        def call(stamp):
            out = model(input_ids=ids, attention_mask=call_mask, use_cache=True, **self.prefill_extra)
            token = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            marks = [stamp()]
            for _ in range(new_tokens - 1):
                out = model(input_ids=token, use_cache=True, **{cache_arg: _cache_of(out)})
                token = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
                marks.append(stamp())
            return marks

        return PreparedCall(
            call=call,
            items_per_call=len(ids),
            tokens_per_call=len(ids) * new_tokens,
            facts=facts,
            output=lambda: model(input_ids=ids, attention_mask=mask, use_cache=False).logits,
            take=lambda rows: self.calls(take_rows({"ids": ids}, rows)["ids"], facts),
            stream=lambda prompt, max_new: self.stream(prompt, max_new, ids.device),
        )

    def stream(self, prompt: list[int], max_new: int, device):
        """Greedy generation for one request: yields each output token id as its step finishes (what a serving
        engine streams). Same model, technique and KV cache as the timed call; EOS ignored."""
        model, cache_arg = self.model, self.cache_arg
        ids = torch.tensor([prompt], dtype=torch.long, device=device)
        out = model(input_ids=ids, use_cache=True, **self.prefill_extra)
        for step in range(max_new):
            token = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            yield int(token[0, 0])
            if step + 1 < max_new:
                out = model(input_ids=token, use_cache=True, **{cache_arg: _cache_of(out)})
