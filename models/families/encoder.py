"""Encoder family (BERT-like): one forward pass over batch x seq tokens per call."""

from __future__ import annotations

import torch

from bench.core.calls import ExportSpec, PreparedCall
from models.base import Workload
from models.families.common import OutputOf, build_model, finish_model, seeded_token_ids, take_rows

AUTO_CLASS = "AutoModel"


def make_inputs(workload: Workload, spec, device: str) -> dict[str, torch.Tensor]:
    ids = seeded_token_ids(spec.batch_size, spec.seq_len, workload.config["vocab_size"], device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}


def prepare(
    workload: Workload, dtype: torch.dtype, device: str, spec, attn_implementation: str | None = None, transform=None
) -> PreparedCall:
    raw, weights = build_model(workload, AUTO_CLASS, dtype, device, spec.weights, attn_implementation)
    model, facts = finish_model(raw, dtype, weights, transform)
    inputs = make_inputs(workload, spec, device)
    prepared = _calls(model, inputs, facts)
    prepared.export = ExportSpec(
        OutputOf(raw, list(inputs), lambda out: out.last_hidden_state), inputs, "last_hidden_state"
    )
    return prepared


def _calls(model, inputs: dict[str, torch.Tensor], facts: dict) -> PreparedCall:
    def call(stamp):
        model(**inputs)
        return None

    return PreparedCall(
        call=call,
        items_per_call=len(inputs["input_ids"]),
        facts=facts,
        output=lambda: model(**inputs).last_hidden_state,
        take=lambda rows: _calls(model, take_rows(inputs, rows), facts),
    )
