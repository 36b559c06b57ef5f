"""Vision family (ResNet, ViT): one forward pass over a batch of square RGB images per call.

Inputs are seeded standard-normal pixel tensors of the entry's image size (224x224 for the full-size
entries), i.e. already normalised images; preprocessing is not part of the timed call.
"""

from __future__ import annotations

import torch

from bench.core.calls import ExportSpec, PreparedCall
from models.base import INPUTS_SEED, Workload
from models.families.common import OutputOf, build_model, finish_model, take_rows

AUTO_CLASS = "AutoModelForImageClassification"


def make_inputs(workload: Workload, spec, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    size, channels = workload.image_size, int(workload.config.get("num_channels", 3))
    generator = torch.Generator().manual_seed(INPUTS_SEED)
    pixels = torch.randn((spec.batch_size, channels, size, size), generator=generator)
    return {"pixel_values": pixels.to(device=device, dtype=dtype)}


def prepare(
    workload: Workload, dtype: torch.dtype, device: str, spec, attn_implementation: str | None = None, transform=None
) -> PreparedCall:
    raw, weights = build_model(workload, AUTO_CLASS, dtype, device, spec.weights, attn_implementation)
    model, facts = finish_model(raw, dtype, weights, transform)
    inputs = make_inputs(workload, spec, device, dtype)
    facts["image_size"] = workload.image_size
    prepared = _calls(model, inputs, facts)
    prepared.export = ExportSpec(OutputOf(raw, list(inputs), lambda out: out.logits), inputs, "logits")
    return prepared


def _calls(model, inputs: dict[str, torch.Tensor], facts: dict) -> PreparedCall:
    def call(stamp):
        model(**inputs)
        return None

    return PreparedCall(
        call=call,
        items_per_call=len(inputs["pixel_values"]),
        facts=facts,
        output=lambda: model(**inputs).logits,
        take=lambda rows: _calls(model, take_rows(inputs, rows), facts),
    )
