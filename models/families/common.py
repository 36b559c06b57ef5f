"""Helpers shared by the families: building a published architecture with seeded random weights."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from models.base import INPUTS_SEED, WEIGHTS_SEED, Workload

__all__ = ["build_random", "model_facts", "seeded_token_ids", "forward_accepts"]


def build_random(workload: Workload, auto_class: str, dtype: torch.dtype, device: str) -> torch.nn.Module:
    """Instantiate `workload.config` through transformers' `auto_class` with seeded random weights.

    No hub access: the config is built locally from the catalogue's published fields.
    """
    import transformers

    fields = dict(workload.config)
    model_type = fields.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **fields)
    torch.manual_seed(WEIGHTS_SEED)
    model = getattr(transformers, auto_class).from_config(config)
    return model.eval().to(device=device, dtype=dtype)


def model_facts(model: torch.nn.Module, dtype: torch.dtype) -> dict[str, Any]:
    """Facts about the built model for the record: class, parameters, attention implementation, weights."""
    return {
        "class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(dtype).replace("torch.", ""),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "weights": f"random (seed {WEIGHTS_SEED})",
        "inputs_seed": INPUTS_SEED,
    }


def seeded_token_ids(batch: int, length: int, vocab_size: int, device: str) -> torch.Tensor:
    """Deterministic token ids in [0, vocab_size), the same for every run of the same shape."""
    generator = torch.Generator().manual_seed(INPUTS_SEED)
    return torch.randint(0, vocab_size, (batch, length), generator=generator).to(device)


def forward_accepts(model: torch.nn.Module, name: str) -> bool:
    """Whether the model's forward takes a keyword `name` (APIs differ between transformers versions)."""
    return name in inspect.signature(model.forward).parameters
