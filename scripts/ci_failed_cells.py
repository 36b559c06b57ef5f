"""Print the cells that are not ok in the given run directories (for scripts/ci_paired.sh): one line,
"; "-separated, each as `model backend precision b=N: reason`; nothing when every cell is ok."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.runs.store import read_run_dirs  # noqa: E402

records = read_run_dirs(sys.argv[1:]).records
print("; ".join(sorted({f"{r.spec.label}: {r.reason}" for r in records if r.status != "ok"})))
