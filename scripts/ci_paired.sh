#!/usr/bin/env bash
# Paired regression check for CI: baseline (a git ref) and candidate (this checkout) measured in the same job,
# interleaved ABBA over several rounds so that drift of the machine falls on both sides, then `bench compare`.
#
#   scripts/ci_paired.sh BASE_REF [ROUNDS] [SWEEP]      (defaults: 4 rounds, scripts/ci_suite.toml)
#
# Writes results/ci/{base,head}-<round>/ and results/ci/compare.md (for a job summary and a pull-request comment:
# the verdict is its first line); exits 1 on a regression or when the comparison could not be made, 0 otherwise.
# A cell that fails on one side does not stop the rounds: the comparison is still made and names the cells that
# failed (and are therefore not compared). Uses .venv from `make setup`.
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

run_side() {  # side round; a failed cell (exit 1) is recorded and the rounds go on
    local status=0
    if [ "$1" = base ]; then
        (cd "$BASE_TREE" && PYTHONPATH="$BASE_TREE" "$PY" -m bench run "$SWEEP" --out "$OUT/base-$2" --quiet) || status=$?
    else
        (cd "$ROOT" && "$BENCH" run "$SWEEP" --out "$OUT/head-$2" --quiet) || status=$?
    fi
    if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
        echo "$1 round $2: bench run exited $status" >> "$OUT/errors.txt"
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
failed_cells() { "$PY" "$ROOT/scripts/ci_failed_cells.py" "$@" 2>/dev/null || true; }
status=0
"$BENCH" compare "$(join "${base_dirs[@]}")" "$(join "${head_dirs[@]}")" --format md > "$OUT/table.md" 2> "$OUT/compare.err" \
    || status=$?
base_failed="$(failed_cells "${base_dirs[@]}")"; head_failed="$(failed_cells "${head_dirs[@]}")"
regressions="$(grep -c "REGRESSION" "$OUT/table.md" || true)"
if [ "$status" -eq 1 ]; then verdict="**Verdict: regression** in $regressions cell(s) (head slower than base beyond the minimum effect)"
elif [ "$status" -eq 0 ]; then verdict="**Verdict: no regression**"
else verdict="**Verdict: no comparison** -- $(head -1 "$OUT/compare.err")"; fi
{
    echo "$verdict"
    echo
    [ -n "$head_failed" ] && echo "Cells that failed on the head (not compared): $head_failed" && echo
    [ -n "$base_failed" ] && echo "Cells that failed on the base (not compared): $base_failed" && echo
    [ -f "$OUT/errors.txt" ] && sed 's/^/- /' "$OUT/errors.txt" && echo
    cat "$OUT/table.md"
} > "$OUT/compare.md"
cat "$OUT/compare.md"
[ "$status" -eq 0 ] || exit 1
