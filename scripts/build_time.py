#!/usr/bin/env python3
"""Build-time benchmark: transformers' default `from_config` vs catchup-bench's fast random construction.

Each (model, method) is built in a fresh process, `--repeat` times, and the build alone is timed (imports
excluded, and the model's modelling code imported beforehand). "default" is what most harnesses do: `AutoModel*.from_config(config)` in fp32 (every weight
initialised twice: the layer's own reset_parameters, then the model's _init_weights), then `.to(dtype)`.
"fast" is `models.families.common.build_random` at the target dtype (no initialisation thrown away, one
seeded fill). Prints a Markdown table.

    PYTHONPATH=. python scripts/build_time.py --model deepseek-r1-distill-qwen-1.5b --model bert-base-uncased
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import importlib, json, sys, time, torch
from models.catalogue import get_workload
from models.base import FAMILIES
from models.families.common import build_meta, build_random, make_config
import transformers
name, method, precision = sys.argv[1:4]
dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
workload = get_workload(name)
auto = importlib.import_module(FAMILIES[workload.family]).AUTO_CLASS
build_meta(workload, auto)  # import the model's modules before timing (both methods pay this once)
start = time.perf_counter()
if method == "default":
    torch.manual_seed(0)
    model = getattr(transformers, auto).from_config(make_config(workload)).to(dtype).eval()
else:
    model = build_random(workload, auto, dtype, "cpu")
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "parameters": sum(p.numel() for p in model.parameters())}))
"""


def build_once(model: str, method: str, precision: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, model, method, precision], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="catalogue entry (repeatable)")
    parser.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    models = args.model or ["bert-base-uncased", "qwen2.5-0.5b", "deepseek-r1-distill-qwen-1.5b"]
    print("| model | parameters | default from_config + cast (s) | fast build (s) | speed-up |")
    print("|---|---|---|---|---|")
    for model in models:
        times = {}
        for method in ("default", "fast"):
            runs = [build_once(model, method, args.precision) for _ in range(args.repeat)]
            times[method] = statistics.median(r["seconds"] for r in runs)
            params = runs[0]["parameters"]
        print(
            f"| {model} ({args.precision}) | {params / 1e6:,.0f}M | {times['default']:.2f} | {times['fast']:.2f} | "
            f"{times['default'] / times['fast']:.1f}x |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
