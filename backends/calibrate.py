"""The host CPU's profile, measured: matmul FLOP/s per dtype, memory bandwidth, and the fixed cost of one operator.

Method (about 15 s on 2 cores, once per machine state; cached):
- matmul: square torch.mm at n = 512, 1024 and 2048 in fp32 and bf16, 2 warm-up + 5 timed calls each; the best
  rate over sizes (2 n^3 FLOPs per call) is the dtype's peak;
- matmul curve: torch.mm of (M, 4096) x (4096, 4096) for M = 1, 4, 16, 64, 256, 1024 per dtype (the weight
  exceeds the caches), best of 3: achieved FLOP/s against arithmetic intensity (FLOPs / bytes of both operands
  and the result). Real layers are mostly skinny matmuls (batch-1 tokens, decode steps) that reach neither the
  peak nor the copy bandwidth; the host cost model reads their rate off this measured curve;
- bandwidth: `dst.copy_(src)` of 256 MiB, best of 7; bytes moved = read + write (2 x 256 MiB); and element-wise
  bandwidth: `torch.add(x, y, out=z)` on 16 Mi fp32 elements (3 x 64 MiB moved), best of 7;
- operator overhead: median time of `torch.add` on 16-element tensors over 2,000 calls: what dispatching one small
  operator costs in eager mode, the fixed per-operator term of the host cost model.
The result is cached as JSON under `$CATCHUP_BENCH_CACHE/calibration/`, keyed by the CPU model, usable cores,
intra-op threads, and the torch version (the environment facts that change these figures).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

__all__ = ["host_profile", "calibrate", "CALIBRATION_VERSION"]

CALIBRATION_VERSION = 2


def _cache_root() -> Path:
    return Path(os.environ.get("CATCHUP_BENCH_CACHE") or Path.home() / ".cache" / "catchup-bench") / "calibration"


def _key() -> tuple[str, dict[str, Any]]:
    import torch

    from bench.core.environment import cpu_model, usable_cpu_count

    facts = {
        "cpu": cpu_model(),
        "usable_cpus": usable_cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "version": CALIBRATION_VERSION,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16], facts


def _best_rate(fn, work: float, warmup: int = 2, repeats: int = 5) -> float:
    for _ in range(warmup):
        fn()
    best = min(_timed(fn) for _ in range(repeats))
    return work / best


def _timed(fn) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def calibrate() -> dict[str, Any]:
    """Measure the host now (see the module docstring); returns the figures."""
    import torch

    peaks: dict[str, float] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rates = []
        for n in (512, 1024, 2048):
            a = torch.randn(n, n).to(dtype)
            b = torch.randn(n, n).to(dtype)
            with torch.inference_mode():
                rates.append(_best_rate(lambda: torch.mm(a, b), 2.0 * n**3))
        peaks[name] = max(rates)
    curves = {name: _matmul_curve(dtype) for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
    bandwidth = _copy_rate(64 << 20)  # 256 MiB of fp32
    elementwise = _add_rate(16 << 20)
    x, y = torch.ones(16), torch.ones(16)
    with torch.inference_mode():
        for _ in range(200):
            torch.add(x, y)
        times = []
        for _ in range(2000):
            began = time.perf_counter_ns()
            torch.add(x, y)
            times.append(time.perf_counter_ns() - began)
    return {
        "peak_flops": peaks,
        "matmul_curve": curves,
        "bandwidth_bytes_s": bandwidth,
        "elementwise_bandwidth_bytes_s": elementwise,
        "op_overhead_s": statistics.median(times) / 1e9,
    }


def _matmul_curve(dtype, k: int = 4096, n: int = 4096) -> list[tuple[float, float]]:
    """[(arithmetic intensity FLOP/byte, achieved FLOP/s)] for (M, k) x (k, n) matmuls, M = 1 ... 1024."""
    import torch

    b = torch.randn(k, n).to(dtype)
    points = []
    with torch.inference_mode():
        for m in (1, 4, 16, 64, 256, 1024):
            a = torch.randn(m, k).to(dtype)
            flops = 2.0 * m * k * n
            moved = (m * k + k * n + m * n) * b.element_size()
            points.append((flops / moved, _best_rate(lambda: torch.mm(a, b), flops, warmup=1, repeats=3)))
    return points


def _copy_rate(elements: int) -> float:
    """Bytes/s of a large fp32 copy (read + write); the buffers are freed on return."""
    import torch

    src = torch.ones(elements)
    dst = torch.empty_like(src)
    return _best_rate(lambda: dst.copy_(src), 2.0 * elements * 4, warmup=1, repeats=7)


def _add_rate(elements: int) -> float:
    """Bytes/s of a large element-wise fp32 add (two reads, one write)."""
    import torch

    x, y, z = torch.ones(elements), torch.ones(elements), torch.empty(elements)
    return _best_rate(lambda: torch.add(x, y, out=z), 3.0 * elements * 4, warmup=1, repeats=7)


def host_profile() -> dict[str, Any]:
    """The calibrated host figures, from the cache or measured now (and cached)."""
    key, facts = _key()
    path = _cache_root() / f"{key}.json"
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
            cached["cached"] = True
            return cached
        except (OSError, ValueError):
            pass
    began = time.perf_counter()
    result = {**calibrate(), "facts": facts, "key": key, "seconds": round(time.perf_counter() - began, 2)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    result["cached"] = False
    return result
