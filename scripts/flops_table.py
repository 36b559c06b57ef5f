#!/usr/bin/env python3
"""FLOPs per call: counted (torch FlopCounterMode on a real call) against the analytic formula from the config.

Entries that fit this machine are built (bf16, random weights) and run once under the counter; the others get
the analytic figure only. Prints a Markdown table for docs/CATALOGUE.md.

    PYTHONPATH=. python scripts/flops_table.py --batch-size 1 --seq-len 128 --new-tokens 32
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    import torch

    from bench.core.spec import BenchmarkSpec
    from models.base import FAMILIES
    from models.catalogue import WORKLOADS
    from models.facts import describe
    from models.work import Shape, analytic_flops, count_flops

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--max-params", type=float, default=2e9, help="count only entries up to this size")
    args = parser.parse_args()
    print("| entry | shape | counted GFLOP | analytic GFLOP | counted / analytic |")
    print("|---|---|---|---|---|")
    for name, workload in WORKLOADS.items():
        if workload.tiny_of:
            continue
        seq = args.seq_len if workload.takes_tokens else None
        new = args.new_tokens if workload.generates else None
        spec = BenchmarkSpec(name, "cpu", "bf16", args.batch_size, seq, new)
        shape_text = f"b={args.batch_size}" + (f" s={seq}" if seq else " 224x224") + (f" +{new} tokens" if new else "")
        analytic = analytic_flops(workload.config, Shape(args.batch_size, seq, new))
        counted = None
        if describe(workload).total_parameters <= args.max_params:
            family = importlib.import_module(FAMILIES[workload.family])
            prepared = family.prepare(workload, dtype=torch.bfloat16, device="cpu", spec=spec)
            with torch.inference_mode():
                counted = count_flops(prepared.call, lambda: 0)
            del prepared
        ratio = f"{counted / analytic:.4f}" if counted and analytic else "-"
        fmt = lambda v: f"{v / 1e9:,.2f}" if v else "-"  # noqa: E731
        print(
            f"| {name} | {shape_text} | {fmt(counted) if counted else 'not built here'} | {fmt(analytic)} | {ratio} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
