"""Checking a --weights directory before anything runs (JSON only; no torch import)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from bench.core.errors import UsageError
from models.base import Workload

__all__ = ["check_weights_dir"]

#: Config keys that may differ between a checkpoint and the catalogue entry without changing the architecture.
_IGNORED_KEYS = (
    "max_position_embeddings",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "rope_scaling",
    "image_size",
)


def check_weights_dir(workload: Workload, directory: str) -> None:
    """Refuse, with one line, a --weights directory that is absent, pickle-only, or another architecture."""
    path = Path(directory)
    if not path.is_dir():
        raise UsageError(f"--weights: {directory!r} is not a directory")
    if not list(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.glob("*.bin")) + sorted(p.name for p in path.glob("*.pt*"))
        found = f"only pickle checkpoints ({', '.join(pickles)})" if pickles else "no *.safetensors file"
        raise UsageError(f"--weights: {directory!r} has {found}; catchup-bench loads safetensors only")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise UsageError(f"--weights: {directory!r} has no config.json to check the architecture against")
    try:
        published = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise UsageError(f"--weights: {str(config_path)!r} is not valid JSON: {exc}") from None
    if not isinstance(published, dict):
        raise UsageError(
            f"--weights: {str(config_path)!r} holds a JSON {type(published).__name__}; expected an "
            "object of config keys"
        )
    for key, expected in workload.config.items():
        if key in _IGNORED_KEYS:
            continue
        if key in published and published[key] != expected:
            raise UsageError(
                f"--weights: {directory!r} holds another architecture than {workload.name}: "
                f"config.json {key} = {published[key]!r}, expected {expected!r}"
            )
    tensors = sum(_safetensors_tensor_count(p, directory) for p in sorted(path.glob("*.safetensors")))
    if tensors == 0:
        raise UsageError(
            f"--weights: {directory!r} holds no tensors in its *.safetensors files; every parameter "
            "must come from the checkpoint"
        )


def _safetensors_tensor_count(path: Path, directory: str) -> int:
    """Tensors named in a safetensors file's header (8-byte little-endian length, then JSON), read without torch."""
    try:
        with open(path, "rb") as fh:
            size = struct.unpack("<Q", fh.read(8))[0]
            if size > 100 << 20:
                raise ValueError(f"header of {size} bytes")
            header = json.loads(fh.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise UsageError(f"--weights: {str(path)!r} is not a safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise UsageError(f"--weights: {str(path)!r} is not a safetensors file (its header is not an object)")
    return sum(1 for key in header if key != "__metadata__")
