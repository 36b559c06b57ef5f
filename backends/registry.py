"""The one backend registry: name -> where its adapter class lives.

Adding a backend is one module and one line here. Nothing else in the project branches on a backend's name;
what a backend can do is declared on its adapter class (`Backend.capabilities`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bench.core.errors import invalid_value

if TYPE_CHECKING:
    from backends.base import Backend

__all__ = ["BACKENDS", "backend_names", "backend_class"]

#: name -> "module:Class" (or "module:function" returning the class). The adapter module must stay light at
#: import time (no torch at top level).
BACKENDS: dict[str, str] = {
    "cpu": "backends.torch_backend:TorchCpuBackend",
    "cuda": "backends.torch_backend:TorchCudaBackend",
    "onnxruntime": "backends.ort_backend:OrtBackend",
    "ascend": "backends.ascend:resolve_ascend",  # the real NPU adapter, or the simulated Ascend without one
    "simulated": "backends.simulated:SimulatedBackend",
    "openai": "backends.openai_backend:OpenAIBackend",  # a serving engine over its OpenAI-compatible HTTP API
}


def backend_names() -> tuple[str, ...]:
    return tuple(BACKENDS)


def backend_class(name: str, field: str = "backend") -> "type[Backend]":
    """The adapter class registered as `name`; a one-line UsageError for an unknown name."""
    if name not in BACKENDS:
        raise invalid_value(field, name, backend_names())
    module_name, _, attribute = BACKENDS[name].partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    # an entry is an adapter class, or a function that picks one (e.g. real NPU or its simulation)
    return found if isinstance(found, type) else found()
