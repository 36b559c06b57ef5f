#!/usr/bin/env bash
# Create .venv-genz (repo root) with the peer simulator GenZ (PyPI genz-llm 0.0.16, import name `GenZ`) for
# scripts/genz/compare.py. Idempotent: re-running only installs what is missing. No torch is needed.
#   bash scripts/genz/setup.sh            # then: .venv-genz/bin/python scripts/genz/compare.py CORPUS.toml
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.venv-genz"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
# genz-llm declares plotting/notebook extras (kaleido, plotly, plotnine, ...) that the modelling code never
# imports; install it without them and add the runtime set, pinned, from requirements.txt.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
if ! "$venv/bin/python" -m pip show --quiet genz-llm 2>/dev/null \
        || [ "$("$venv/bin/python" -m pip show genz-llm 2>/dev/null | sed -n 's/^Version: //p')" != "0.0.16" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "genz-llm==0.0.16"
fi
"$venv/bin/python" -c "import GenZ; from GenZ import prefill_moddeling, decode_moddeling; print('GenZ import ok')"

# Keep the venv out of git status without touching .gitignore.
exclude="$(git -C "$root" rev-parse --git-path info/exclude 2>/dev/null || true)"
if [ -n "$exclude" ]; then
    case "$exclude" in /*) ;; *) exclude="$root/$exclude" ;; esac
    mkdir -p "$(dirname "$exclude")"
    touch "$exclude"
    grep -qxF '/.venv-genz/' "$exclude" || echo '/.venv-genz/' >> "$exclude"
fi
