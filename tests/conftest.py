"""Shared test helpers. Tests use tiny variants of real architectures through the real code paths; the only
fakes are a seeded clock (statistics/measurement) and stand-ins for devices absent here, each named as such."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: float = 600,
            prefix: list[str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m bench ARGS` as a user would, from a checkout (PYTHONPATH=root), capturing output.
    `prefix` runs it under another command (e.g. taskset)."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env.pop(("BENCH_FAULT_INJECT"), None)
    full_env.update(env or {})
    return subprocess.run(
        [*(prefix or []), sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=full_env,
        cwd=cwd or ROOT, timeout=timeout,
    )


#: Short measurement settings for tests: enough samples for a median interval, little wall time.
QUICK = ["--warmup-iterations", "2", "--warmup-time", "0", "--warmup-window", "0", "--min-iterations", "8",
         "--min-time", "0.2", "--ci-target", "0"]


@pytest.fixture(scope="session")
def quick_args() -> list[str]:
    return list(QUICK)


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` or `npu` skip, with the probe's reason, where that device is absent."""
    reasons: dict[str, str | None] = {}
    for item in items:
        for marker in ("cuda", "npu"):
            if marker not in item.keywords:
                continue
            if marker not in reasons:
                reasons[marker] = _device_missing(marker)
            if reasons[marker]:
                item.add_marker(pytest.mark.skip(reason=f"needs {marker}: {reasons[marker]}"))


def _device_missing(marker: str) -> str | None:
    if marker == "cuda":
        from backends.torch_backend import cuda_unavailable_reason

        return cuda_unavailable_reason()
    try:
        import torch_npu  # noqa: F401
        import torch

        return None if torch.npu.is_available() else "torch.npu.is_available() is False"
    except Exception as exc:
        return f"torch_npu cannot be imported ({type(exc).__name__})"
