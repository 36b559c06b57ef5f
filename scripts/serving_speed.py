"""Speed of the serving projection: one projection including the search (and the low/high searches), the
published-results validation with the committed factors (every row at three ends), and one refit, with the peak
Python memory and the process's peak resident memory.

    python scripts/serving_speed.py [--repeats N] [--no-refit]

Prints a Markdown table (median and max wall time over the repeats; peak traced memory of one run). Targets
(docs/SERVING.md): one projection < 1 s, the validation < 30 s, on this project's 2-core machine; nothing the
size of a model's weights is allocated.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.projection.project import ServingQuery, project  # noqa: E402
from bench.projection.validation import validate  # noqa: E402

QUERIES = [
    (
        "deepseek-r1, 32 x ascend-910c, int8, 4096/1024, TPOT 50 ms",
        ServingQuery(
            "deepseek-r1",
            "ascend-910c",
            chips=32,
            precision="int8",
            input_tokens=4096,
            output_tokens=1024,
            tpot_slo_ms=50,
        ),
    ),
    (
        "deepseek-r1, 320 x h800, fp8, 4096/1024, TPOT 50 ms",
        ServingQuery(
            "deepseek-r1", "h800", chips=320, precision="fp8", input_tokens=4096, output_tokens=1024, tpot_slo_ms=50
        ),
    ),
    (
        "deepseek-r1, 16 x h100, fp8, 4096/1024, TPOT 50 ms, colocated and disaggregated, sglang",
        ServingQuery(
            "deepseek-r1",
            "h100",
            chips=16,
            precision="fp8",
            input_tokens=4096,
            output_tokens=1024,
            tpot_slo_ms=50,
            engine="sglang",
        ),
    ),
    (
        "llama-3.1-70b, 8 x h100, fp8, EAGLE-3 K=3 L=2.5, vllm, TPOT 30 ms",
        ServingQuery(
            "llama-3.1-70b",
            "h100",
            chips=8,
            precision="fp8",
            tpot_slo_ms=30,
            engine="vllm",
            spec_tokens=3,
            acceptance_length=2.5,
        ),
    ),
    (
        "llama-3.1-405b, 16 x h100, bf16, 2048/512, TPOT 100 ms, TTFT 2 s",
        ServingQuery(
            "llama-3.1-405b",
            "h100",
            chips=16,
            precision="bf16",
            input_tokens=2048,
            output_tokens=512,
            tpot_slo_ms=100,
            ttft_slo_ms=2000,
        ),
    ),
]


def timed(fn, repeats: int) -> tuple[float, float, float]:
    fn()  # first call pays imports and config parsing
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), max(times), peak / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-refit", action="store_true", help="skip the refit (about a minute)")
    args = parser.parse_args()
    print("| what | median s | max s | peak traced MiB |\n|---|---|---|---|")
    for label, query in QUERIES:
        median, worst, peak = timed(lambda q=query: project(q), args.repeats)
        print(f"| projection: {label} | {median:.3f} | {worst:.3f} | {peak:.1f} |")
    median, worst, peak = timed(lambda: validate(), max(1, args.repeats // 2))
    rows = len(validate().rows)
    print(f"| validation, committed factors ({rows} rows x 3 ends) | {median:.2f} | {worst:.2f} | {peak:.1f} |")
    if not args.no_refit:
        began = time.perf_counter()
        validate(refit=True)
        print(
            f"| validation with a refit (fit rows only, then {rows} rows) | {time.perf_counter() - began:.1f} | - | - |"
        )
    import resource

    print(
        f"\npeak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
