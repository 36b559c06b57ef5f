#!/bin/sh
# `transformers serve` in an environment of its own (the project's own environment gets it with the
# `transformers-serve` extra, which `make setup` installs; this script is for a checkout whose environment you
# would rather not change).
#
#   sh scripts/engines/transformers_serve.sh   -> $ENGINES/transformers/bin/transformers (printed on the last line)
#
# torch comes through scripts/install_torch.sh (the CPU build where no NVIDIA GPU answers; TORCH_VERSION, default
# 2.13.0, installs from local disk in seconds on this project's machines): never the 5 GB CUDA build by accident.
set -eu
ENGINES=${CATCHUP_BENCH_ENGINES:-$HOME/.cache/catchup-bench/engines}
TRANSFORMERS=${TRANSFORMERS:-5.24.0}
PYTHON=${PYTHON:-python3}
DEST="$ENGINES/transformers"
if [ -x "$DEST/bin/transformers" ]; then
    echo "$DEST/bin/transformers"
    exit 0
fi
"$PYTHON" -m venv "$DEST"
sh "$(dirname "$0")/../install_torch.sh" "$DEST/bin/python"
"$DEST/bin/python" -m pip install -q "transformers[serving]==$TRANSFORMERS"
echo "$DEST/bin/transformers"
