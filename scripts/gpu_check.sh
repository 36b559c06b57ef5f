#!/bin/sh
# GPU check: run the CUDA-marked tests and the short CUDA suite (scripts/gpu_suite.toml, which also projects two
# cells onto the h200 profile to check the simulation against the measured GPU) on a GPU machine, from a
# checkout, without installing anything:  PYTHONPATH=. sh scripts/gpu_check.sh OUT_DIR
# Writes OUT_DIR/{env.txt,list.txt,cuda-tests.log,run/records.jsonl,run.log,results.md,summary.txt}; exits 0 even
# when a step fails (the summary says which), so that whatever was measured comes back. Budget: under 8 minutes on
# one H200 (tests about 1 minute, suite about 5).
set -u
OUT=${1:?usage: sh scripts/gpu_check.sh OUT_DIR}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="${PYTHONPATH:-.}" HF_HUB_OFFLINE=1 CATCHUP_BENCH_CACHE="$OUT/cache"
started=$(date +%s)
step() { echo "$(($(date +%s) - started)) s: $*" | tee -a "$OUT/summary.txt"; }

{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv 2>&1
  $PY -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)'
} > "$OUT/env.txt" 2>&1
step "environment: $(tail -1 "$OUT/env.txt")"

$PY -m bench list > "$OUT/list.txt" 2>&1
step "bench list: exit $?"

timeout 240 $PY -m pytest -q -m cuda tests/test_cuda.py tests/test_backends.py -p no:cacheprovider > "$OUT/cuda-tests.log" 2>&1
step "CUDA tests: exit $? ($(tail -1 "$OUT/cuda-tests.log"))"

timeout 330 $PY -m bench run scripts/gpu_suite.toml --out "$OUT/run" > "$OUT/run.log" 2>&1
step "CUDA suite: exit $?"

$PY -m bench show "$OUT/run" --format md > "$OUT/results.md" 2>&1
$PY -m bench show "$OUT/run" --format csv > "$OUT/results.csv" 2>&1
rm -rf "$OUT/cache"
step "done"
