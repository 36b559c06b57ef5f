#!/bin/sh
# The field's benchmark clients for scripts/compare_clients.py, each in an environment of its own:
#   aiperf (NVIDIA)  -> $ENGINES/aiperf/bin/aiperf
#   guidellm         -> $ENGINES/guidellm/bin/guidellm   (it requires torch: the CPU build, pinned as for vLLM)
#   vllm bench serve -> comes with scripts/engines/vllm_cpu.sh
# AIPERF and GUIDELLM (default 0.13.0 and 0.8.1) are the versions; an environment already there is kept.
set -eu
ENGINES=${CATCHUP_BENCH_ENGINES:-$HOME/.cache/catchup-bench/engines}
AIPERF=${AIPERF:-0.13.0}
GUIDELLM=${GUIDELLM:-0.8.1}
PYTHON=${PYTHON:-python3}
HERE=$(dirname "$0")
if [ ! -x "$ENGINES/aiperf/bin/aiperf" ]; then
    "$PYTHON" -m venv "$ENGINES/aiperf"
    "$ENGINES/aiperf/bin/python" -m pip install -q "aiperf==$AIPERF"
fi
if [ ! -x "$ENGINES/guidellm/bin/guidellm" ]; then
    "$PYTHON" -m venv "$ENGINES/guidellm"
    TORCH_VERSION=${TORCH_VERSION:-2.13.0} sh "$HERE/../install_torch.sh" "$ENGINES/guidellm/bin/python"
    "$ENGINES/guidellm/bin/python" -c 'import torch; print(f"torch=={torch.__version__}")' \
        >"$ENGINES/guidellm/torch-constraint.txt"
    PIP_CONSTRAINT="$ENGINES/guidellm/torch-constraint.txt" "$ENGINES/guidellm/bin/python" -m pip install -q \
        "guidellm==$GUIDELLM"
fi
echo "$ENGINES/aiperf/bin/aiperf"
echo "$ENGINES/guidellm/bin/guidellm"
