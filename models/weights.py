"""Checking a --weights directory before anything runs (JSON only; no torch import)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.errors import UsageError
from models.base import Workload

__all__ = ["check_weights_dir"]

#: Config keys that may differ between a checkpoint and the catalogue entry without changing the architecture.
_IGNORED_KEYS = ("max_position_embeddings", "bos_token_id", "eos_token_id", "pad_token_id", "rope_scaling",
                 "image_size")


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
        published = json.loads(config_path.read_text())
    except ValueError as exc:
        raise UsageError(f"--weights: {str(config_path)!r} is not valid JSON: {exc}") from None
    for key, expected in workload.config.items():
        if key in _IGNORED_KEYS:
            continue
        if key in published and published[key] != expected:
            raise UsageError(
                f"--weights: {directory!r} holds another architecture than {workload.name}: "
                f"config.json {key} = {published[key]!r}, expected {expected!r}"
            )
