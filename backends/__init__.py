"""Backends: one adapter per runtime/device, found through one registry (`backends.registry`).

Importing this package is cheap: adapter modules import torch or their runtime only when used.
"""

from backends.registry import BACKENDS, backend_class, backend_names

__all__ = ["BACKENDS", "backend_class", "backend_names"]
