"""Encoder family (BERT-like): one forward pass over batch x seq tokens per call."""

from __future__ import annotations

import torch

from backends.base import PreparedCall
from models.base import Workload
from models.families.common import build_random, model_facts, seeded_token_ids


def prepare(workload: Workload, dtype: torch.dtype, device: str, spec) -> PreparedCall:
    model = build_random(workload, "AutoModel", dtype, device)
    ids = seeded_token_ids(spec.batch_size, spec.seq_len, workload.config["vocab_size"], device)
    inputs = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "token_type_ids": torch.zeros_like(ids),
    }

    def call(stamp):
        model(**inputs)
        return None

    return PreparedCall(call=call, items_per_call=spec.batch_size, facts=model_facts(model, dtype))
