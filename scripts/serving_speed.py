"""Speed of the serving projection: one projection including the search (and the low/high searches), and the
whole published-results validation (fit + every row), with the peak Python memory each needs.

    python scripts/serving_speed.py [--repeats N]

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
from bench.projection.published import validate  # noqa: E402

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
    args = parser.parse_args()
    print("| what | median s | max s | peak traced MiB |\n|---|---|---|---|")
    for label, query in QUERIES:
        median, worst, peak = timed(lambda q=query: project(q), args.repeats)
        print(f"| projection: {label} | {median:.3f} | {worst:.3f} | {peak:.1f} |")
    median, worst, peak = timed(lambda: validate(), max(1, args.repeats // 2))
    print(
        f"| published-results validation (fit + {len(validate().rows)} rows) | {median:.2f} | {worst:.2f} | "
        f"{peak:.1f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
