#!/usr/bin/env python3
"""Time to result: stopping on precision against a fixed-count run of equal precision, for one cell.

1. Run the cell with the adaptive rule (stop when the median's 95% interval is within +-TARGET).
2. From that run's samples, find the fixed count a user would have to choose in advance to reach +-TARGET with
   95% probability: the smallest n for which 95% of 400 seeded resamples of size n meet the target.
3. Run the cell again with exactly that fixed count.
Both runs go through the real CLI path (isolated worker); the wall time of each `bench run` is reported, and
the timed-loop time from its record. Prints a Markdown row.

    PYTHONPATH=. python scripts/time_to_result.py --model bert-base --seq-len 128 --target 0.01
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(args: list[str], out: Path) -> tuple[float, dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "bench", "run", *args, "--out", str(out), "--quiet"],
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    record = json.loads((out / "records.jsonl").read_text().splitlines()[-1])
    return wall, record


def fixed_count_for(samples: list[int], target: float, trials: int = 400) -> int:
    from bench.core.stats import median_halfwidth_rel

    rng = np.random.default_rng(0)
    arr = np.asarray(samples)
    n = 6
    while n < 20_000:
        ok = sum((median_halfwidth_rel(list(rng.choice(arr, n))) or 1) <= target for _ in range(trials))
        if ok >= 0.95 * trials:
            return n
        n = n + 1 if n < 30 else int(n * 1.05) + 1  # finer where counts are small
    raise RuntimeError("no fixed count reaches the target")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bert-base")
    parser.add_argument("--batch-size", default="1")
    parser.add_argument("--seq-len", default="128")
    parser.add_argument("--target", type=float, default=0.01)
    args = parser.parse_args()
    cell = [
        "--model",
        args.model,
        "--batch-size",
        args.batch_size,
        "--seq-len",
        args.seq_len,
        "--min-iterations",
        "10",
        "--min-time",
        "0",
        "--max-time",
        "300",
        "--timeout",
        "900",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        adaptive_wall, adaptive = run([*cell, "--ci-target", str(args.target)], Path(tmp, "adaptive"))
        samples = adaptive["measurement"]["samples_ns"]
        n_fixed = fixed_count_for(samples, args.target)
        fixed_wall, fixed = run(
            [*cell, "--ci-target", "0", "--min-iterations", str(n_fixed), "--max-iterations", str(n_fixed)],
            Path(tmp, "fixed"),
        )
    from bench.core.stats import median_halfwidth_rel

    def loop_s(record):
        return record["measurement"]["loop_wall_ns"] / 1e9

    print("| cell | adaptive: calls, loop s, run s, +-CI | fixed for 95% chance: calls, loop s, run s, +-CI |")
    print("|---|---|---|")
    print(
        f"| {args.model} b={args.batch_size} s={args.seq_len} target +-{args.target:.0%} | "
        f"{len(samples)}, {loop_s(adaptive):.1f}, {adaptive_wall:.1f}, "
        f"{median_halfwidth_rel(samples):.2%} ({adaptive['measurement']['stopped_by']}) | "
        f"{n_fixed}, {loop_s(fixed):.1f}, {fixed_wall:.1f}, "
        f"{median_halfwidth_rel(fixed['measurement']['samples_ns']):.2%} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
