"""The one backend registry: name -> where its adapter class lives.

Adding a backend is one module and one line here -- or, from another package, one module and one entry point in
the `catchup_bench.backends` group of that package's metadata. Nothing else in the project branches on a backend's name;
what a backend can do is declared on its adapter class (`Backend.capabilities`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bench.core.errors import invalid_value

if TYPE_CHECKING:
    from backends.base import Backend

__all__ = ["BACKENDS", "ENTRY_POINT_GROUP", "registered", "is_registered", "backend_names", "backend_class"]

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


#: Backends of other installed packages: entry points `NAME = "module:Class"` in this group (pyproject.toml:
#: `[project.entry-points."catchup_bench.backends"]`). A built-in name wins over a plugin of the same name.
ENTRY_POINT_GROUP = "catchup_bench.backends"
_PLUGINS: dict[str, str] | None = None


def _plugins() -> dict[str, str]:
    global _PLUGINS
    if _PLUGINS is None:
        from importlib.metadata import entry_points

        _PLUGINS = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in BACKENDS}
    return _PLUGINS


def registered() -> dict[str, str]:
    """Every backend name -> "module:attribute": the built-in ones, then installed plugins."""
    return {**BACKENDS, **_plugins()}


def backend_names() -> tuple[str, ...]:
    return tuple(registered())


def is_registered(name: str) -> bool:
    return name in registered()


def backend_class(name: str, field: str = "backend") -> "type[Backend]":
    """The adapter class registered as `name`; a one-line UsageError for an unknown name."""
    entries = registered()
    if name not in entries:
        raise invalid_value(field, name, tuple(entries))
    module_name, _, attribute = entries[name].partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    # an entry is an adapter class, or a function that picks one (e.g. real NPU or its simulation)
    return found if isinstance(found, type) else found()
