"""Facts per catalogue entry, computed from the built architecture (on the meta device: no weights allocated).

- total parameters: every parameter of the model as transformers builds it (tied weights once);
- active parameters per token: everything outside the routed experts, plus the routed experts' parameters x
  (experts per token / routed experts), *without* the input embedding table, of which a token reads one row
  (this is the figure that drives compute and weight traffic per token, and DeepSeek's convention);
  `active_parameters_with_embedding` adds the table back (Qwen's convention). Routed-expert parameters are
  those under a module path containing ".experts." (shared experts are named "shared_experts", always active).
  For a dense model, active = total - input embedding;
- weight bytes at each precision: parameters x bytes per element (int8: 1 byte per parameter, a lower bound,
  since quantizers usually leave embeddings and norms in floating point);
- memory needed to run at a precision (an estimate, documented as such): weights + 15% for activations, KV
  cache and allocator slack + 1 GiB for the runtime itself;
- whether that fits this machine's memory (total RAM for the CPU backend).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.core.vocabulary import DTYPE_BYTES
from models.base import FAMILIES, Workload

__all__ = [
    "WorkloadFacts",
    "count_parameters",
    "describe",
    "memory_needed_bytes",
    "activation_bytes",
]


#: Headroom over the weights for activations, KV cache and allocator slack, and the runtime's own footprint.
ACTIVATION_HEADROOM = 0.15
RUNTIME_BYTES = 1 << 30


@dataclass(frozen=True)
class WorkloadFacts:
    name: str
    family: str
    task: str
    total_parameters: int
    active_parameters: int
    active_parameters_with_embedding: int
    weight_bytes: dict[str, int]
    memory_needed_bytes: dict[str, int]
    fits_here: dict[str, bool]
    machine_memory_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def _experts_per_token(config) -> tuple[int, int] | None:
    routed = (
        getattr(config, "n_routed_experts", None)
        or getattr(config, "num_experts", None)
        or getattr(config, "num_local_experts", None)
    )
    active = getattr(config, "num_experts_per_tok", None)
    return (int(active), int(routed)) if routed and active else None


_COUNTS: dict[str, tuple[int, int, int]] = {}


#: Counts of the catalogue's entries, each under the digest of the config it was counted from (`python -m
#: models.facts --write` refreshes it; a test checks it against fresh meta-device counts). A config whose digest
#: differs is counted afresh, so the file can be stale but never wrong.
COUNTS_FILE = Path(__file__).with_name("parameter_counts.json")


def config_digest(workload: Workload) -> str:
    """What a parameter count depends on: the family and the published config."""
    text = json.dumps([workload.family, dict(workload.config)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _committed_counts() -> dict[str, Any]:
    try:
        return json.loads(COUNTS_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def count_parameters(workload: Workload) -> tuple[int, int, int]:
    """(total, active per token, input embedding) parameters: from COUNTS_FILE when it holds this config's
    counts, else counted on the meta device (either way cached by name in this process)."""
    if workload.name not in _COUNTS:
        entry = _committed_counts().get(workload.name)
        if entry and entry.get("config_digest") == config_digest(workload):
            _COUNTS[workload.name] = (entry["total"], entry["active"], entry["embedding"])
        else:
            _COUNTS[workload.name] = _count(workload)
    return _COUNTS[workload.name]


def fresh_counts() -> dict[str, dict[str, Any]]:
    """Every catalogue entry counted on the meta device now (what COUNTS_FILE should hold)."""
    from models.catalogue import WORKLOADS

    out = {}
    for workload in WORKLOADS.values():
        total, active, embedding = _count(workload)
        out[workload.name] = {
            "config_digest": config_digest(workload),
            "total": total,
            "active": active,
            "embedding": embedding,
        }
    return out


def _count(workload: Workload) -> tuple[int, int, int]:
    from models.families.common import build_meta

    family = importlib.import_module(FAMILIES[workload.family])
    model = build_meta(workload, family.AUTO_CLASS)
    total = routed = 0
    seen: set[int] = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        if ".experts." in f".{name}":
            routed += param.numel()
    moe = _experts_per_token(model.config)
    embedding_params = _input_embedding_parameters(model) if workload.takes_tokens else 0
    active = total - routed + (routed * moe[0] // moe[1] if moe else routed) - embedding_params
    return total, active, embedding_params


def _input_embedding_parameters(model) -> int:
    """Parameters of the token embedding table (0 where the model has none)."""
    try:
        embedding = model.get_input_embeddings()
    except (NotImplementedError, AttributeError):
        return 0
    weight = getattr(embedding, "weight", None)
    return weight.numel() if weight is not None else 0


def memory_needed_bytes(parameters: int, precision: str) -> int:
    weights = parameters * DTYPE_BYTES[precision]
    return int(weights * (1 + ACTIVATION_HEADROOM)) + RUNTIME_BYTES


def describe(workload: Workload, machine_memory_bytes: int | None = None) -> WorkloadFacts:
    if machine_memory_bytes is None:
        import psutil

        machine_memory_bytes = psutil.virtual_memory().total
    total, active, embedding = count_parameters(workload)
    weight_bytes = {p: int(total * b) for p, b in DTYPE_BYTES.items()}
    needed = {p: memory_needed_bytes(total, p) for p in DTYPE_BYTES}
    return WorkloadFacts(
        name=workload.name,
        family=workload.family,
        task=workload.task,
        total_parameters=total,
        active_parameters=active,
        active_parameters_with_embedding=active + embedding,
        weight_bytes=weight_bytes,
        memory_needed_bytes=needed,
        fits_here={p: n <= machine_memory_bytes for p, n in needed.items()},
        machine_memory_bytes=machine_memory_bytes,
    )


def activation_bytes(
    workload: Workload, batch: int, seq_len: int | None, new_tokens: int | None, element_bytes: float
) -> int:
    """An estimate (upper-end, documented as such) of the memory one call needs beside its weights, from the
    config alone: for token models a few hidden-width and two MLP-width tensors per token alive at once, the eager
    attention score matrix (batch x heads x seq^2), the KV cache of a generation and the last position's logits;
    for image models the input and about 24 input-sized feature maps (ResNet's early stages)."""
    cfg = workload.config
    if not workload.takes_tokens:
        size = int(cfg.get("image_size") or 224)
        return int(batch * 3 * size * size * element_bytes * 25)
    hidden = int(cfg.get("hidden_size") or cfg.get("n_embd") or 0)
    heads = int(cfg.get("num_attention_heads") or cfg.get("n_head") or 1)
    layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 1)
    width = int(cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * hidden)
    seq = int(seq_len or 1)
    tokens = batch * (seq + (new_tokens or 0))
    live = tokens * (6 * hidden + 2 * width) * element_bytes
    scores = batch * heads * seq * seq * element_bytes
    kv = tokens * 2 * hidden * layers * element_bytes if workload.generates else 0
    logits = batch * int(cfg.get("vocab_size") or 0) * 4 if workload.generates else 0
    return int(live + scores + kv + logits)


if __name__ == "__main__":  # python -m models.facts --write: refresh COUNTS_FILE
    import sys

    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python -m models.facts --write")
    COUNTS_FILE.write_text(json.dumps(fresh_counts(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {COUNTS_FILE}")
