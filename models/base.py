"""The workload protocol: a catalogue entry (data) plus the family that knows how to build and feed it.

A `Workload` carries the model's published architecture config and a few facts the planner needs without
importing torch (task, maximum positions, default generation length). `prepare()` hands over to the family
module (`models.families.<family>`), which builds the model with seeded random weights, makes seeded inputs,
and returns the call to time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from bench.core.calls import PreparedCall
    from bench.core.spec import BenchmarkSpec

__all__ = ["Workload", "TASKS", "FAMILIES", "WEIGHTS_SEED", "INPUTS_SEED"]

#: What a call does: "encode" (one forward over batch x seq tokens), "classify-image" (one forward over a batch
#: of images) or "generate" (prefill + decode steps).
TASKS = ("encode", "classify-image", "generate")

#: Family name -> module that builds and feeds it.
FAMILIES = {
    "encoder": "models.families.encoder",
    "vision": "models.families.vision",
    "causal-lm": "models.families.causal_lm",
}

#: Seeds for random weights and inputs; fixed so every run of a spec sees the same model and inputs.
WEIGHTS_SEED = 0
INPUTS_SEED = 1234


@dataclass(frozen=True)
class Workload:
    """One catalogue entry.

    config                the published architecture config (transformers keys, including `model_type`)
    source                where that config was published
    tiny_of               for a `-tiny` test variant, the entry whose architecture family it shares
    published_parameters  total parameters on the model card (tests check the built model against it)
    published_active      for mixture-of-experts models, parameters active per token on the model card
    weights_package       an importable package that ships real weights for this entry (offline)
    """

    name: str
    family: str
    task: str
    config: Mapping[str, Any]
    description: str
    source: str
    aliases: tuple[str, ...] = ()
    tiny_of: str | None = None
    default_new_tokens: int | None = None
    max_positions_key: str = "max_position_embeddings"
    published_parameters: float | None = None
    published_active: float | None = None
    weights_package: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task {self.task!r} not in {TASKS}")
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family {self.family!r} not in {tuple(FAMILIES)}")

    @property
    def generates(self) -> bool:
        return self.task == "generate"

    @property
    def takes_tokens(self) -> bool:
        """Whether inputs are token sequences (so seq_len applies); images have a fixed size instead."""
        return self.task != "classify-image"

    @property
    def max_positions(self) -> int | None:
        """Longest sequence (prompt + generated tokens) the architecture accepts; None for images."""
        return int(self.config[self.max_positions_key]) if self.takes_tokens else None

    @property
    def image_size(self) -> int | None:
        return int(self.config["image_size"]) if not self.takes_tokens else None

    @property
    def is_moe(self) -> bool:
        return self.published_active is not None or any(
            k in self.config for k in ("n_routed_experts", "num_experts", "num_local_experts")
        )

    def prepare(
        self,
        dtype: Any,
        device: str,
        spec: "BenchmarkSpec",
        attn_implementation: str | None = None,
        transform: Any = None,
    ) -> "PreparedCall":
        """Build the model and inputs on `device` at `dtype` and return the call to time.

        `attn_implementation` is passed to transformers (None: its default); `transform(model) -> model` is the
        backend's technique (compilation, quantization), applied after the model's facts are taken."""
        family = importlib.import_module(FAMILIES[self.family])
        return family.prepare(
            self, dtype=dtype, device=device, spec=spec, attn_implementation=attn_implementation, transform=transform
        )
