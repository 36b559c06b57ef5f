"""The accuracy guard: how far a technique's output is from the fp32 CPU reference on the same inputs.

The reference is the same workload (same seeded weights, cut from the same seeded pool, or the same real weights;
same seeded inputs) built at fp32 and run with torch eager on the CPU. Compared tensors are those of
`PreparedCall.output()`. Reported:
  max_abs_error     max |output - reference|
  mean_abs_error    mean |output - reference|
  cosine_similarity cosine of the flattened output and reference (1 = same direction)
  top1_agreement    for logits (classifiers and LMs): share of positions whose argmax agrees
"""

from __future__ import annotations

import importlib
from typing import Any

from models.base import FAMILIES, Workload

__all__ = ["REFERENCE", "reference_output", "deviation"]

REFERENCE = "fp32, torch eager, CPU"


def reference_output(workload: Workload, spec) -> Any:
    """The fp32 CPU output for the spec's inputs (builds its own model)."""
    import torch

    family = importlib.import_module(FAMILIES[workload.family])
    prepared = family.prepare(workload, dtype=torch.float32, device="cpu", spec=spec)
    with torch.inference_mode():
        return prepared.output().float()


def deviation(output: Any, reference: Any, logits: bool) -> dict[str, Any]:
    """Deviation metrics of `output` from `reference` (tensors of the same shape)."""
    import torch

    # float64: the cosine of million-element vectors accumulated in float32 can read above 1
    out, ref = output.detach().double().cpu(), reference.detach().double().cpu()
    if out.shape != ref.shape:
        raise ValueError(f"output shape {tuple(out.shape)} differs from the reference's {tuple(ref.shape)}")
    diff = (out - ref).abs()
    result: dict[str, Any] = {
        "reference": REFERENCE,
        "compared_shape": list(out.shape),
        "max_abs_error": float(diff.max()),
        "mean_abs_error": float(diff.mean()),
        "cosine_similarity": float(torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0)),
        "top1_agreement": None,
    }
    if logits:
        result["top1_agreement"] = float((out.argmax(-1) == ref.argmax(-1)).float().mean())
    return result
