#!/bin/sh
# Install torch into the interpreter given as $1, choosing the build for this machine:
#   - an NVIDIA GPU answers nvidia-smi  -> the default (CUDA) build from PyPI;
#   - otherwise                         -> the CPU build: a local wheel when pip's find-links has one (no
#                                          download), else PyTorch's CPU index (never the 5 GB CUDA build).
# An interpreter that already imports torch is left alone (e.g. a GPU image's preinstalled torch).
# Overrides: TORCH_VERSION (default 2.13.0), TORCH_CPU_INDEX (default https://download.pytorch.org/whl/cpu).
set -eu
PY="$1"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "install_torch: torch $("$PY" -c 'import torch; print(torch.__version__)') already installed; leaving it"
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install_torch: NVIDIA GPU found; installing the CUDA build of torch $TORCH_VERSION"
    exec "$PY" -m pip install "torch==$TORCH_VERSION"
fi
echo "install_torch: no NVIDIA GPU; installing the CPU build of torch $TORCH_VERSION"
if "$PY" -m pip install --no-index --no-deps "torch==$TORCH_VERSION" >/dev/null 2>&1; then
    # torch came from a local wheel; fetch only its small pure-Python dependencies.
    exec "$PY" -m pip install "torch==$TORCH_VERSION"
fi
exec "$PY" -m pip install "torch==$TORCH_VERSION" \
    --index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" --extra-index-url https://pypi.org/simple
