#!/usr/bin/env bash
# Paired regression check for CI: baseline (a git ref) and candidate (this checkout) measured in the same job,
# interleaved ABBA over several rounds so that drift of the machine falls on both sides, then `bench compare`.
#
#   scripts/ci_paired.sh BASE_REF [ROUNDS] [SWEEP]      (defaults: 4 rounds, scripts/ci_suite.toml)
#
# Writes results/ci/{base,head}-<round>/ and results/ci/compare.md (for a job summary); exits 1 on a
# regression, 0 otherwise. Uses .venv from `make setup`.
set -euo pipefail
BASE_REF="$1"
ROUNDS="${2:-4}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SWEEP="${3:-$ROOT/scripts/ci_suite.toml}"
SWEEP="$(cd "$(dirname "$SWEEP")" && pwd)/$(basename "$SWEEP")"  # absolute: both sides run from their own tree
OUT="$ROOT/results/ci"
BENCH="$ROOT/.venv/bin/bench"
PY="$ROOT/.venv/bin/python"
rm -rf "$OUT" && mkdir -p "$OUT"
BASE_TREE="$(mktemp -d)/base"
git -C "$ROOT" worktree add --detach "$BASE_TREE" "$BASE_REF" >/dev/null
trap 'git -C "$ROOT" worktree remove --force "$BASE_TREE" >/dev/null 2>&1 || true' EXIT

run_side() {  # side round
    if [ "$1" = base ]; then
        (cd "$BASE_TREE" && PYTHONPATH="$BASE_TREE" "$PY" -m bench run "$SWEEP" --out "$OUT/base-$2" --quiet)
    else
        (cd "$ROOT" && "$BENCH" run "$SWEEP" --out "$OUT/head-$2" --quiet)
    fi
}

base_dirs=(); head_dirs=()
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="base head"; else order="head base"; fi
    for side in $order; do
        run_side "$side" "$round" > /dev/null
    done
    base_dirs+=("$OUT/base-$round"); head_dirs+=("$OUT/head-$round")
done
join() { local IFS=,; echo "$*"; }
status=0
"$BENCH" compare "$(join "${base_dirs[@]}")" "$(join "${head_dirs[@]}")" --format md > "$OUT/compare.md" || status=$?
cat "$OUT/compare.md"
exit "$status"
